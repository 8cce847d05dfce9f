"""Which plugin code produced a record: a digest of the plugin distribution's installed files.

`plugin_digest(distribution)` is a sha256 over the files the distribution's ``RECORD``
lists (read through `importlib.metadata`), each as its relative path and the sha256 of
its content, in sorted order. Files that differ between two installs of the same wheel
are left out: byte-compiled caches, ``RECORD``, ``INSTALLER``, ``REQUESTED``,
``direct_url.json`` and scripts outside site-packages. An editable install (``pip
install -e``) lists only a path hook in ``RECORD``, so for it the digest covers the
source files of its top-level packages instead. Two installs with the same digest run the
same plugin code; `clbench verify` refuses to re-run a record whose digest differs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

_INSTALL_SPECIFIC = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _skipped(relative: str) -> bool:
    parts = relative.split("/")
    return (relative.startswith("..") or "__pycache__" in parts or relative.endswith(".pyc")
            or parts[-1] in _INSTALL_SPECIFIC or relative.startswith("__editable__"))


def _editable(dist: metadata.Distribution) -> bool:
    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(info.get("dir_info", {}).get("editable"))


def _top_level(dist: metadata.Distribution) -> list[str]:
    names = (dist.read_text("top_level.txt") or "").split()
    if not names:  # no top_level.txt: the modules its entry points load
        names = sorted({ep.value.split(":")[0].split(".")[0] for ep in dist.entry_points})
    return names


def _editable_files(dist: metadata.Distribution) -> list[tuple[str, Path]]:
    files = []
    for name in _top_level(dist):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        if spec.submodule_search_locations:  # a package: every file under it
            root = origin.parent
            files += [(f"{name}/{path.relative_to(root).as_posix()}", path)
                      for path in root.rglob("*") if path.is_file()]
        else:
            files.append((origin.name, origin))
    return files


@lru_cache(maxsize=None)
def plugin_digest(distribution: str) -> str | None:
    """'sha256:...' over the distribution's installed files; None if it is not installed."""
    try:
        dist = metadata.distribution(distribution)
    except (metadata.PackageNotFoundError, ValueError):
        return None
    if _editable(dist):
        files = _editable_files(dist)
    else:
        files = [(str(f), Path(f.locate())) for f in dist.files or []]
    digest = hashlib.sha256()
    for relative, path in sorted(files):
        if _skipped(relative) or not path.is_file():
            continue
        digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


def install_line(distribution: str, version: str) -> str:
    return f"pip install '{distribution}=={version}'"
