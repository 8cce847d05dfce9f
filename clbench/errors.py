"""User-facing errors.

Anything a user can get wrong (a name, a value, a path) raises `ClbenchError`; the CLI
prints its message on one line and exits with status 2. A failure of the machine, the
data or the harness (a full disk, out of memory, corrupted labels) is a `HarnessFailure`:
one line too, exit status 1, and never blamed on the method (`classify` recognises the
exceptions that mean one). Ctrl-C is `Interrupted` (one line, status 130). Everything
else is a bug and is allowed to show a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ClbenchError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return " (did you mean 'x'?)" for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind: str, word: str, choices: Iterable[str]) -> ClbenchError:
    """The standard error for an unknown protocol, method, field, ... name."""
    choices = sorted(choices)
    hint = did_you_mean(word, choices)
    if not hint:
        listed = ", ".join(choices) if choices else "none"
        hint = f"; known: {listed}"
    return ClbenchError(f"unknown {kind} '{word}'{hint}")


class RunFailure(Exception):
    """A run that cannot produce a valid record (raised by the harness, not the method)."""


class NonFiniteLoss(RunFailure):
    pass


class RunTimeLimit(RunFailure):
    pass


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with one line on what was kept (the CLI prints it and exits with 130)."""


class HarnessFailure(ClbenchError):
    """The harness, the machine or the data failed, not the method: one line, exit status 1.

    A method's own exception is reported as that method's failure; these are not, so a
    full disk or a corrupted dataset is never blamed on the method being benchmarked.
    """

    kind = "harness"


class DiskFull(HarnessFailure):
    kind = "machine"


class OutOfMemory(HarnessFailure):
    kind = "machine"


class BadData(HarnessFailure):
    kind = "data"


class BadPath(HarnessFailure):
    kind = "path"


_OOM_TEXT = ("out of memory", "defaultcpuallocator", "can't allocate memory", "cannot allocate memory")


def _chain(exc: BaseException):
    """The exception, what it wraps (Ray's `cause`) and what caused it, nearest first."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__


def _size(text: str) -> str:
    """'40.0 GB' from torch's 'you tried to allocate 40000000000 bytes' or CUDA's 'Tried to allocate 2.00 GiB'."""
    import re

    match = re.search(r"allocate (\d+) bytes", text)
    if match:
        return f"; tried to allocate {int(match.group(1)) / 1e9:.1f} GB"
    match = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]i?B)", text)
    return f"; tried to allocate {match.group(1)}" if match else ""


def classify(exc: BaseException) -> HarnessFailure | None:
    """The failure of the harness or the machine behind `exc`, or None if it is the method's.

    Disk full (ENOSPC, EDQUOT), out of memory (MemoryError, torch's allocator errors, an
    OOM-killed worker) and a name the filesystem refuses (ENAMETOOLONG) are the machine's
    fault, whoever raised them; a training label outside the protocol's classes is the
    data's (the harness builds the model's output layer from the protocol and hands out
    the labels, so only corrupted files produce one; `clbench.preflight.check_labels`
    names them before training where the data are read).
    """
    import errno
    import re

    for item in _chain(exc):
        if isinstance(item, HarnessFailure):
            return item
        text = str(item)
        first = text.strip().splitlines()[0] if text.strip() else type(item).__name__
        if isinstance(item, OSError) and item.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" while writing '{item.filename}'" if item.filename else ""
            return DiskFull(f"disk full{where} ({item.strerror})")
        if isinstance(item, OSError) and item.errno == errno.ENAMETOOLONG:
            return BadPath(f"file name too long for the filesystem: '{item.filename}'")
        if isinstance(item, MemoryError) or (isinstance(item, OSError) and item.errno == errno.ENOMEM):
            return OutOfMemory(f"out of memory ({type(item).__name__}{': ' + first if text.strip() else ''})")
        if isinstance(item, RuntimeError) and any(s in text.lower() for s in _OOM_TEXT):
            return OutOfMemory(f"out of memory{_size(text)}")
        if isinstance(item, (IndexError, RuntimeError)) and re.search(r"Target -?\d+ is out of bounds", text):
            return BadData(f"bad data: a training label is outside the protocol's classes ({first}); "
                           "the dataset files under the data root are probably corrupted")
        if type(item).__name__ == "BrokenProcessPool":
            return HarnessFailure("a worker process died abruptly (killed by a signal, often the "
                                  "system running out of memory)")
        if type(item).__name__ == "HarnessProcessFailure":
            inner = OutOfMemory if any(s in text.lower() for s in _OOM_TEXT + ("memoryerror",)) else HarnessFailure
            return inner(f"the harness process failed: {first}")
    return None


class AuditFailure(RunFailure):
    """The harness's audit found a rule broken (see clbench.audit); the run has no record."""


class BudgetExceeded(AuditFailure):
    """More optimizer steps or forward samples in a phase than the protocol allows."""


class UncountedUpdate(AuditFailure):
    """The model's parameters changed outside the harness's counted optimizer steps."""


class MemoryExceeded(AuditFailure):
    """The strategy retains more training samples than the method declares."""
