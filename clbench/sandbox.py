"""`--sandbox`: deny the method's processes the data root, with Linux Landlock.

Process isolation (clbench.isolation) keeps test data out of the method's memory, but any
code can read the public dataset files from disk and rebuild the test sets with clbench's
own loader. Landlock (Linux 5.13+) lets an unprivileged process give up file access for
good, for itself and every process it starts later. Landlock only grants, never denies, so
the sandbox grants everything *except* the data root: every entry beside each folder on
the way down to it gets full access, and the folders on the way get directory listing
only. Reading, writing or executing anything under the data root then fails with
EACCES; listing the folders that lead to it still works.

Call `deny_paths` after starting the harness process (which must read the data) and
before importing any method plugin.
"""

from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

from .errors import ClbenchError

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# LANDLOCK_ACCESS_FS_* bits, and the ABI that introduced each
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_DIR_ONLY = sum(1 << bit for bit in range(4, 13))  # remove/make dir, file, char, sock, fifo, block, sym
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return 0
    version = _libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    return max(int(version), 0)


def _rights(abi: int) -> tuple[int, int]:
    """(every handled right, the subset that applies to a regular file) for this ABI."""
    file_rights = _EXECUTE | _WRITE_FILE | _READ_FILE
    if abi >= 3:
        file_rights |= _TRUNCATE
    if abi >= 5:
        file_rights |= _IOCTL_DEV
    handled = file_rights | _READ_DIR | _DIR_ONLY | (_REFER if abi >= 2 else 0)
    return handled, file_rights


def granted_paths(denied: list[Path]) -> tuple[list[Path], list[Path]]:
    """(paths granted in full, folders granted listing only) so that `denied` stay out of reach."""
    denied = [Path(os.path.realpath(p)) for p in denied]
    ancestors = {a for d in denied for a in [d, *d.parents]}
    full: list[Path] = []
    for folder in sorted(ancestors - set(denied), key=lambda p: len(p.parts)):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            if path not in ancestors:
                full.append(path)
    listing = sorted(ancestors - set(denied))
    return full, listing


def deny_paths(paths: list[str | os.PathLike]) -> None:
    """Restrict this process and its future children: no access below any of `paths`."""
    abi = landlock_abi()
    if abi < 1:
        raise ClbenchError("--sandbox needs Linux Landlock (kernel 5.13+, enabled), which this "
                           "machine does not offer; run without --sandbox (the data root stays "
                           "readable to methods: see docs/trust.md)")
    libc = _libc()
    handled, file_rights = _rights(abi)
    attr = _RulesetAttr(handled)
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0)
    if ruleset < 0:
        raise ClbenchError(f"--sandbox: landlock_create_ruleset failed ({os.strerror(ctypes.get_errno())})")
    try:
        full, listing = granted_paths([Path(p) for p in paths])
        for path, access in [*((p, None) for p in full), *((p, _READ_DIR) for p in listing)]:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # vanished, or a dangling link: nothing to grant
            try:
                is_dir = os.path.isdir(path) and not os.path.islink(path)
                rights = access if access is not None else (handled if is_dir else file_rights)
                rule = _PathBeneathAttr(rights, fd)
                if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                    raise ClbenchError(f"--sandbox: cannot grant '{path}' "
                                       f"({os.strerror(ctypes.get_errno())})")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise ClbenchError(f"--sandbox: prctl(NO_NEW_PRIVS) failed ({os.strerror(ctypes.get_errno())})")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise ClbenchError(f"--sandbox: landlock_restrict_self failed ({os.strerror(ctypes.get_errno())})")
    finally:
        os.close(ruleset)


def enter(data_root: Path, outputs: list[Path]) -> None:
    """Start the harness process, then deny this process the data root (CLI `--sandbox`)."""
    root = Path(os.path.realpath(data_root))
    for out in outputs:
        resolved = Path(os.path.realpath(out))
        if resolved == root or root in resolved.parents:
            raise ClbenchError(f"--sandbox: the output folder '{out}' is inside the data root '{data_root}'")
    from .isolation import start_harness

    start_harness()
    deny_paths([root])
