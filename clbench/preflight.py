"""Checks made before any training, so that nothing fails after the compute is spent.

- Every output path fits the filesystem: each component at most NAME_MAX bytes (255 on
  most filesystems), the whole path under PATH_MAX, including the record, failure-note
  and checkpoint names each run will write (a long `--set name=...` makes long record
  names). A path that does not fit is one line and exit status 2.
- The dataset's labels are within its classes (a corrupted file is `BadData`, exit 1).

The data root itself is checked where it is resolved (`clbench.datasets.resolve_data_root`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import BadData, ClbenchError
from .tmpfiles import name_max

#: Longest path the kernel accepts, in bytes (Linux's PATH_MAX, terminating NUL included).
PATH_MAX = 4096

#: Classes of each raw dataset: every label must lie in 0..n-1.
DATASET_CLASSES = {"mnist": 10, "cifar100": 100, "tinyimagenet": 200}


def _short(text: str, keep: int = 24) -> str:
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-keep:]}"


def check_path(path: str | os.PathLike, what: str, hint: str = "") -> Path:
    """`path` if every component and the whole fit the filesystem, else a one-line error."""
    path = Path(path).expanduser()
    limit = name_max(path.parent)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise ClbenchError(f"{what} '{_short(str(path))}': the name '{_short(part)}' is {size} bytes, "
                               f"longer than the {limit} this filesystem allows{hint}")
    total = len(os.fsencode(str(path.absolute())))
    if total >= PATH_MAX:
        raise ClbenchError(f"{what} '{_short(str(path))}' is {total} bytes long; paths must be "
                           f"shorter than {PATH_MAX}{hint}")
    return path


def run_file_names(record_filename: str) -> list[str]:
    """Every file a run writes beside its record: the record, NAME.failure and NAME.log."""
    stem = Path(record_filename).stem
    return [record_filename, f"{stem}.failure", f"{stem}.log"]


def check_run_outputs(out: str | os.PathLike, record_filenames: Iterable[str], checkpoint_folder: str) -> None:
    """The output folder, each run's files in it, and its checkpoint folder all fit."""
    out = check_path(out, "output folder")
    check_path(out / checkpoint_folder / ("0" * 20 + ".ckpt"), "checkpoint path")
    for filename in record_filenames:
        for name in run_file_names(filename):
            check_path(out / name, "record file",
                       "; use a shorter protocol name (--set name=...) or --out folder")


def check_labels(dataset: str, root: Path) -> None:
    """Refuse a dataset whose labels fall outside its classes (corrupted files), before training."""
    from .datasets import load_raw

    raw = load_raw(dataset, root)
    classes = DATASET_CLASSES[dataset]
    for split, labels in (("training", raw.train_y), ("test", raw.test_y)):
        bad = (labels < 0) | (labels >= classes)
        if bool(bad.any()):
            example = int(labels[bad][0])
            raise BadData(f"bad data: {int(bad.sum()):,} of the {len(labels):,} {dataset} {split} labels "
                          f"under '{root}' are outside 0-{classes - 1} (e.g. {example}); the dataset "
                          "files are corrupted: download them again")
