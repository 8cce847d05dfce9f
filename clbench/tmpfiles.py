"""Temporary files of atomic writes: how they are named, and removing the ones left behind.

Records, failure notes and checkpoints are written to a hidden temporary file beside the
target and renamed into place (`clbench.records.write_atomic`, `clbench.checkpoint`). A
kill inside that window leaves the temporary file. Its name says who wrote it:

    .TARGET.HOST-PID-XXXXXXXX.tmp     e.g. .smoke__naive__seed0__52479de2e8.json.3fa2c1-4711-k2j3h4g5.tmp

(HOST: 6 hex digits of a hash of the host name; PID: the writer's process id; X: random),
so the next `evaluate` or `suite` on the folder removes exactly the ones whose writer is
gone: written on this host by a process that no longer exists, or (any writer, and the
older `.TARGET.XXXXXXXX.tmp` form without host and pid) untouched for `STALE_AFTER_S`.
Only targets clbench itself writes there (`.json`, `.failure`, `.log`, `.ckpt`) and its
own writability probes are considered; nothing else in the folder is touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from pathlib import Path

#: A temporary file untouched this long has no live writer, whoever wrote it.
STALE_AFTER_S = 3600.0
#: The longest file name most filesystems allow, in bytes (used when pathconf cannot say).
NAME_MAX = 255

_TARGETS = r"(?:json|failure|log|ckpt)"
_TAGGED = re.compile(rf"^\.(?P<target>.+\.{_TARGETS})\.(?P<host>[0-9a-f]{{6}})-(?P<pid>\d+)-[a-z0-9_]{{8}}\.tmp$")
_LEGACY = re.compile(rf"^\.(?P<target>.+\.{_TARGETS})\.[a-z0-9_]{{8}}\.tmp$|^\.clbench-probe-[a-z0-9_]{{8}}$")


def host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def name_max(folder: Path) -> int:
    """The longest file name (bytes) allowed in `folder`, or in its nearest existing parent."""
    folder = Path(folder).absolute()
    for candidate in (folder, *folder.parents):
        try:
            return os.pathconf(candidate, "PC_NAME_MAX")
        except (OSError, ValueError):
            continue
    return NAME_MAX


def tmp_prefix(path: Path) -> str:
    """mkstemp's prefix for a temporary file beside `path` (use suffix=".tmp").

    A target whose name leaves no room for the tag is shortened in the middle, keeping its
    extension, so the temporary name always fits where the target itself fits.
    """
    path = Path(path)
    tag = f".{host_tag()}-{os.getpid()}-"
    room = name_max(path.parent) - len(".") - len(tag.encode()) - 8 - len(".tmp")
    target = path.name
    if len(os.fsencode(target)) > room:
        extension = path.suffix
        keep = os.fsencode(target)[:max(room - len(extension) - 1, 1)].decode(errors="ignore")
        target = f"{keep}~{extension}"
    return f".{target}{tag}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # it exists (another user's), or the number is not a pid: leave it to age
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether `path` is a temporary file of clbench's whose writer is certainly gone."""
    path = Path(path)
    tagged = _TAGGED.match(path.name)
    if tagged is None and _LEGACY.match(path.name) is None:
        return False
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    return (tagged is not None and tagged["host"] == host_tag() and int(tagged["pid"]) != os.getpid()
            and not _alive(int(tagged["pid"])))


def remove_stale(folder: Path) -> list[Path]:
    """Remove the stale temporary files directly in `folder`; returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and entry.is_file(follow_symlinks=False) and is_stale(Path(entry.path)):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except FileNotFoundError:
                pass
    return removed
