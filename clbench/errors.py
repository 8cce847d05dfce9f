"""User-facing errors.

Anything a user can get wrong (a name, a value, a path) raises `ClbenchError`; the CLI
prints its message on one line and exits with status 2. Everything else is a bug and is
allowed to show a traceback.
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
