"""Tasks and phases: benchmark data cut into tasks, then into per-phase training sets.

Everything lives in memory as float32 tensors that are already standardised and (for
permuted MNIST) permuted, shaped (N, C, H, W) (`BenchmarkSpec.input_shape`; only the MLP
flattens), so nothing runs per sample while training. Only the
images a task uses are standardised: the raw dataset stays uint8, and no float copy of
the whole dataset is kept (a `smoke` task uses 2,000 of MNIST's 60,000 images). All
random choices come from the run seed through named streams (see `seeding`).

A task never gets fewer samples than the protocol asks for: a pool or test set larger
than the data holds is an error, checked by `preload` before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .datasets import RawDataset, load_raw
from .errors import ClbenchError
from .protocol import BenchmarkSpec
from .seeding import torch_generator

RAW_DATASET = {
    "permuted-mnist": "mnist",
    "split-mnist": "mnist",
    "split-cifar100": "cifar100",
    "split-tinyimagenet": "tinyimagenet",
}


@dataclass(frozen=True)
class Task:
    """One task: its training pool, its test set and the classes it contains.

    Labels are the dataset's classes in the class-incremental scenario; in the domain- and
    task-incremental scenarios of a split they are positions within `classes` (0, 1, ...).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[int, ...]


@dataclass(frozen=True)
class PhaseData:
    """What a phase trains on: inputs, targets and each sample's task of origin."""

    x: torch.Tensor
    y: torch.Tensor
    origin: torch.Tensor
    counts: tuple[int, ...]


def preload(benchmark: BenchmarkSpec, data_root: Path) -> None:
    """Read the benchmark's dataset into the process cache and check that every task gets
    the samples the protocol asks for (a ClbenchError if the data is missing or too small)."""
    raw = load_raw(RAW_DATASET[benchmark.name], data_root)
    if benchmark.name == "permuted-mnist":
        _check_size(benchmark, "train", len(raw.train_y), "MNIST")
        _check_size(benchmark, "test", len(raw.test_y), "MNIST")
        return
    per_task = benchmark.n_classes // benchmark.n_tasks
    for split, labels in (("train", raw.train_y), ("test", raw.test_y)):
        by_class = torch.bincount(labels, minlength=benchmark.n_classes).tolist()
        if benchmark.class_order == "fixed":
            groups = [tuple(range(t * per_task, (t + 1) * per_task)) for t in range(benchmark.n_tasks)]
            for t, classes in enumerate(groups):
                _check_size(benchmark, split, sum(by_class[c] for c in classes),
                            f"task {t} (classes {list(classes)})")
        else:  # some seed may put the rarest classes into one task
            rarest = sorted(sorted(range(benchmark.n_classes), key=lambda c: (by_class[c], c))[:per_task])
            _check_size(benchmark, split, sum(by_class[c] for c in rarest),
                        f"a task of the rarest classes {rarest} (a seeded class order can draw them)")


def _check_size(benchmark: BenchmarkSpec, split: str, available: int, holder: str) -> None:
    """A one-line error if `holder` has fewer `split` samples than the protocol asks for."""
    field = f"{split}_samples_per_task"
    wanted = getattr(benchmark, field)
    if wanted is not None and wanted > available:
        noun = "training" if split == "train" else "test"
        raise ClbenchError(f"{holder} has only {available} {noun} samples; set benchmark.{field} "
                           f"(now {wanted}) to at most that")


def load_tasks(benchmark: BenchmarkSpec, data_root: Path, seed: int) -> list[Task]:
    """The benchmark's tasks for one seed (data read from disk once per process)."""
    raw = load_raw(RAW_DATASET[benchmark.name], data_root)
    if benchmark.name == "permuted-mnist":
        return _permuted_tasks(benchmark, raw, seed)
    return _split_tasks(benchmark, raw, seed)


def _subset(size: int, wanted: int | None, seed: int, *stream: object) -> torch.Tensor | None:
    """Seeded indices of `wanted` of `size` items, or None to keep all of them in order.

    Asking for more than there is is the caller's error to report; here it is a bug.
    """
    if wanted is not None and wanted > size:
        raise ValueError(f"asked for {wanted} of {size} items")
    if wanted is None or wanted == size:
        return None
    return torch.randperm(size, generator=torch_generator(seed, *stream))[:wanted].sort().values


class _Standardiser:
    """Standardised rows of a raw split, computed for the rows a task uses.

    Standardising is element-wise, so a subset's values are bit-identical to the same rows
    of the whole split standardised at once; the whole split is standardised (once per
    `load_tasks` call, never kept beyond it) only when a task uses all of it.
    """

    def __init__(self, raw: RawDataset, images: torch.Tensor):
        self.raw, self.images, self._whole = raw, images, None

    def rows(self, index: torch.Tensor | None) -> torch.Tensor:
        if index is not None:
            return self.raw.standardised(self.images[index])
        if self._whole is None:
            self._whole = self.raw.standardised(self.images)
        return self._whole


def _permuted_tasks(benchmark: BenchmarkSpec, raw: RawDataset, seed: int) -> list[Task]:
    available, test_available = len(raw.train_y), len(raw.test_y)
    _check_size(benchmark, "train", available, "MNIST")
    _check_size(benchmark, "test", test_available, "MNIST")
    train, test_rows = _Standardiser(raw, raw.train_x), _Standardiser(raw, raw.test_x)
    n_pixels = raw.train_x[0].numel()
    tasks = []
    for t in range(benchmark.n_tasks):
        permutation = torch.randperm(n_pixels, generator=torch_generator(seed, "permutation", t))
        pool = _subset(available, benchmark.train_samples_per_task, seed, "pool", t)
        test = _subset(test_available, benchmark.test_samples_per_task, seed, "test", t)
        ty = raw.train_y if pool is None else raw.train_y[pool]
        ey = raw.test_y if test is None else raw.test_y[test]
        shape = (-1, *benchmark.input_shape)  # permuted pixels, kept in the image's shape
        tasks.append(Task(
            train.rows(pool)[:, permutation].contiguous().view(shape), ty.clone(),
            test_rows.rows(test)[:, permutation].contiguous().view(shape), ey.clone(), tuple(range(10)),
        ))
    return tasks


def _split_tasks(benchmark: BenchmarkSpec, raw: RawDataset, seed: int) -> list[Task]:
    per_task = benchmark.n_classes // benchmark.n_tasks
    order = list(range(benchmark.n_classes))
    if benchmark.class_order == "seeded":
        order = torch.randperm(benchmark.n_classes, generator=torch_generator(seed, "class-order")).tolist()
    tasks = []
    for t in range(benchmark.n_tasks):
        classes = tuple(order[t * per_task:(t + 1) * per_task])
        wanted = torch.tensor(classes)
        train_idx = torch.isin(raw.train_y, wanted).nonzero().squeeze(1)
        test_idx = torch.isin(raw.test_y, wanted).nonzero().squeeze(1)
        for split, index in (("train", train_idx), ("test", test_idx)):
            _check_size(benchmark, split, len(index), f"task {t} (classes {list(classes)})")
        pool = _subset(len(train_idx), benchmark.train_samples_per_task, seed, "pool", t)
        test = _subset(len(test_idx), benchmark.test_samples_per_task, seed, "test", t)
        train_idx = train_idx if pool is None else train_idx[pool]
        test_idx = test_idx if test is None else test_idx[test]
        shape = (-1, *benchmark.input_shape)
        tasks.append(Task(
            raw.standardised(raw.train_x[train_idx]).view(shape), _labels(raw.train_y[train_idx], classes, benchmark),
            raw.standardised(raw.test_x[test_idx]).view(shape), _labels(raw.test_y[test_idx], classes, benchmark),
            classes,
        ))
    return tasks


def _labels(y: torch.Tensor, classes: tuple[int, ...], benchmark: BenchmarkSpec) -> torch.Tensor:
    """The labels the scenario uses: the class itself (class-incremental), else its
    position within the task's classes (e.g. even/odd digit on 2-class Split MNIST tasks)."""
    if benchmark.scenario == "class":
        return y
    position = torch.full((benchmark.n_classes,), -1, dtype=torch.long)
    position[list(classes)] = torch.arange(len(classes))
    return position[y]


def phase_data(tasks: list[Task], counts: list[int], phase: int, seed: int) -> PhaseData:
    """The training set of `phase`: counts[t] samples of each task t, drawn without replacement."""
    xs, ys, origins = [], [], []
    for task_id, count in enumerate(counts):
        if count == 0:
            continue
        task = tasks[task_id]
        pool = len(task.train_y)
        if count > pool:
            raise ClbenchError(f"phase {phase} wants {count} samples of task {task_id}, pool has {pool}")
        if count == pool:
            idx = torch.arange(pool)
        else:
            idx = torch.randperm(pool, generator=torch_generator(seed, "draw", phase, task_id))[:count]
        xs.append(task.train_x[idx])
        ys.append(task.train_y[idx])
        origins.append(torch.full((count,), task_id, dtype=torch.long))
    return PhaseData(torch.cat(xs), torch.cat(ys), torch.cat(origins), tuple(counts))

