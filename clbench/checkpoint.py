"""Per-phase checkpoints, so a killed run continues from its last finished phase.

After every phase but the last, the runner saves what the rest of the run depends on:
the model's and optimizer's ``state_dict``s, Avalanche's training clock, the method's own
state (through its `Checkpointing` hooks), every RNG state, and the measurements made so
far. A resumed run restores all of it and produces the same record as an uninterrupted
one (wall time and creation time aside).

A checkpoint holds only tensors, numbers, strings, lists and dicts. It is written with
``torch.save`` to a temporary file and renamed into place, and read back with
``torch.load(weights_only=True)``, which refuses anything else, so a checkpoint can
never run code. A checkpoint that is unreadable, or was written by another clbench or
method version or for another device, is ignored and the run starts over.
"""

from __future__ import annotations

import errno
import io
import os
import random
import tempfile
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .errors import DiskFull
from .tmpfiles import remove_stale, tmp_prefix

FORMAT = 2  # 2: checkpoints carry the run audit's state
FOLDER = "checkpoints"


def checkpoint_path(folder: Path, run_id: str) -> Path:
    return Path(folder) / f"{run_id}.ckpt"


def check_plain(value: Any, where: str = "state") -> None:
    """Refuse anything `torch.load(weights_only=True)` could not read back (one clear error)."""
    if value is None or type(value) in (bool, int, float, str) or isinstance(value, torch.Tensor):
        return  # exact types: numpy scalars subclass float but cannot be loaded back
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_plain(item, f"{where}[{index}]")
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is not a str or int")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"{where} is a {type(value).__name__}; checkpoints hold only tensors, "
                    "numbers, strings, lists and plain dicts")


def rng_state() -> dict:
    """Every global RNG a strategy may draw from, as plain tensors and numbers."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss_next"]))
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def clock_state(strategy) -> dict[str, int]:
    """Avalanche's training clock (iteration and experience counters some plugins read)."""
    return {name: value for name, value in vars(strategy.clock).items() if isinstance(value, int)}


def stamp(method: str, method_version: str, device: str) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed from."""
    return {"format": FORMAT, "clbench": __version__, "method": method,
            "method_version": method_version, "device": device}


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically: a kill at any moment leaves the old checkpoint or the new one.

    The payload is serialised in memory first: torch.save reports a failed write to a
    file as an opaque RuntimeError, while a plain write raises OSError, so a full disk is
    reported as that (`DiskFull`, with the path and the size).
    """
    check_plain(payload, "checkpoint")
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getbuffer()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=tmp_prefix(path), suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"disk full while writing checkpoint '{path}' "
                           f"({len(data) / 2**20:.1f} MB): {exc.strerror}") from exc
        raise
    finally:
        data.release()


def load_checkpoint(path: Path, run_id: str, expected_stamp: dict) -> tuple[dict | None, str]:
    """The checkpoint for `run_id`, or None and the reason it cannot be used."""
    path = Path(path)
    if not path.exists():
        return None, "no checkpoint"
    try:
        # tensors go back to the device they were saved from (the stamp pins the device)
        payload = torch.load(path, weights_only=True)
    except Exception as exc:  # truncated, corrupted, or holding objects: start over
        return None, f"unreadable checkpoint ({type(exc).__name__})"
    if not isinstance(payload, dict) or payload.get("run_id") != run_id:
        return None, "checkpoint of another run"
    if payload.get("stamp") != expected_stamp:
        return None, "checkpoint from another clbench, method version or device"
    return payload, ""


def discard_checkpoint(folder: Path | None, run_id: str) -> None:
    """Remove a run's checkpoint once its record is safely written."""
    if folder is not None:
        checkpoint_path(folder, run_id).unlink(missing_ok=True)
        try:
            Path(folder).rmdir()  # only when empty: no stray folder beside finished records
        except OSError:
            pass


def tidy(out: Path, finished_run_ids: Iterable[str] = ()) -> list[Path]:
    """Before runs write to `out`: remove what interrupted runs left there.

    That is the stale temporary files of interrupted writes (see `clbench.tmpfiles`) in
    `out` and `out/checkpoints`, and the checkpoints of runs whose record is already
    written (a kill between writing a record and deleting its checkpoint). Returns the
    paths removed.
    """
    out = Path(out)
    removed = remove_stale(out)
    folder = out / FOLDER
    if folder.is_dir():
        removed += remove_stale(folder)
        for run_id in finished_run_ids:
            path = checkpoint_path(folder, run_id)
            if path.exists():
                path.unlink(missing_ok=True)
                removed.append(path)
        try:
            folder.rmdir()  # only when empty
        except OSError:
            pass
    return removed
