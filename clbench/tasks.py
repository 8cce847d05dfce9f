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
    tuning = benchmark.stream == "tuning"
    if benchmark.name == "permuted-mnist":
        _check_size(benchmark, "train", len(raw.train_y), "MNIST")
        _check_size(benchmark, "test", len(raw.test_y), "MNIST")
        if tuning:
            _validation_size(len(raw.train_y), benchmark.test_samples_per_task or len(raw.test_y),
                             benchmark, "MNIST")
        return
    per_task = benchmark.n_classes // benchmark.n_tasks
    counts = {split: torch.bincount(labels, minlength=benchmark.n_classes).tolist()
              for split, labels in (("train", raw.train_y), ("test", raw.test_y))}

    def total(split, classes):
        return sum(counts[split][c] for c in classes)

    def rarest(split):
        return sorted(sorted(range(benchmark.n_classes), key=lambda c: (counts[split][c], c))[:per_task])

    if benchmark.class_order == "fixed":
        groups = [(list(range(t * per_task, (t + 1) * per_task)), f"task {t}") for t in range(benchmark.n_tasks)]
        checks = [(split, classes, f"{name} (classes {classes})") for classes, name in groups
                  for split in ("train", "test")]
    else:  # some seed may put the rarest classes into one task
        checks = [(split, classes, f"a task of the rarest classes {classes} (a seeded class order can "
                   "draw them)") for split in ("train", "test") for classes in [rarest(split)]]
    for split, classes, holder in checks:
        _check_size(benchmark, split, total(split, classes), holder)
        if tuning and split == "train":
            _validation_size(total("train", classes), benchmark.test_samples_per_task or total("test", classes),
                             benchmark, holder)


def _check_size(benchmark: BenchmarkSpec, split: str, available: int, holder: str) -> None:
    """A one-line error if `holder` has fewer `split` samples than the protocol asks for."""
    field = f"{split}_samples_per_task"
    wanted = getattr(benchmark, field)
    if wanted is not None and wanted > available:
        noun = "training" if split == "train" else "test"
        raise ClbenchError(f"{holder} has only {available} {noun} samples; set benchmark.{field} "
                           f"(now {wanted}) to at most that")


def load_tasks(benchmark: BenchmarkSpec, data_root: Path, seed: int) -> list[Task]:
    """The benchmark's tasks for one seed (data read from disk once per process).

    On the tuning stream (`benchmark.stream`), every task is built from training images
    only: see `_holdout`, and docs/tuning.md.
    """
    raw = load_raw(RAW_DATASET[benchmark.name], data_root)
    if benchmark.name == "permuted-mnist":
        return _permuted_tasks(benchmark, raw, seed)
    return _split_tasks(benchmark, raw, seed)


#: Fewest validation images a tuning-stream task may have (fewer cannot rank settings).
MIN_VALIDATION = 100


def _validation_size(available: int, test_size: int, benchmark: BenchmarkSpec, holder: str) -> int:
    """How many of `available` training images a tuning-stream task validates on (a
    one-line ClbenchError when the training pool leaves too few)."""
    wanted = benchmark.train_samples_per_task
    room = available - wanted
    size = min(test_size, room)
    if size < min(MIN_VALIDATION, test_size):
        most = available - min(MIN_VALIDATION, test_size)
        raise ClbenchError(
            f"the tuning stream holds out validation images from the training images of {holder}, "
            f"which has {available} and trains on {wanted}, leaving {max(room, 0)}; tune with "
            f"--set benchmark.train_samples_per_task=N, N at most {most}")
    return size


def _holdout(available: int, test_size: int, benchmark: BenchmarkSpec, seed: int, task: int,
             holder: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The tuning stream's split of a task's `available` training images: (pool candidates,
    validation), as sorted positions.

    Validation gets as many images as the evaluation stream tests on (`test_size`), out of
    what the task's training pool leaves over; the pool is then drawn from the rest as on
    the evaluation stream. No test image is ever read.
    """
    size = _validation_size(available, test_size, benchmark, holder)
    order = torch.randperm(available, generator=torch_generator(seed, "tuning-holdout", task))
    return order[size:].sort().values, order[:size].sort().values


def _subset(size: int, wanted: int | None, seed: int, *stream: object) -> torch.Tensor | None:
    """Seeded indices of `wanted` of `size` items, or None to keep all of them in order.

    Asking for more than there is is the caller's error to report; here it is a bug.
    """
    if wanted is not None and wanted > size:
        raise ValueError(f"asked for {wanted} of {size} items")
    if wanted is None or wanted == size:
        return None
    return torch.randperm(size, generator=torch_generator(seed, *stream))[:wanted].sort().values


class _Rows:
    """Scaled float rows of a raw split (`benchmark.inputs`), computed for the rows a task uses.

    Scaling is element-wise, so a subset's values are bit-identical to the same rows of
    the whole split scaled at once; the whole split is scaled (once per `load_tasks`
    call, never kept beyond it) only when a task uses all of it.
    """

    def __init__(self, raw: RawDataset, images: torch.Tensor, inputs: str):
        self.raw, self.images, self.inputs, self._whole = raw, images, inputs, None

    def rows(self, index: torch.Tensor | None) -> torch.Tensor:
        if index is not None:
            return self.raw.scaled(self.images[index], self.inputs)
        if self._whole is None:
            self._whole = self.raw.scaled(self.images, self.inputs)
        return self._whole


def _permuted_tasks(benchmark: BenchmarkSpec, raw: RawDataset, seed: int) -> list[Task]:
    available, test_available = len(raw.train_y), len(raw.test_y)
    _check_size(benchmark, "train", available, "MNIST")
    _check_size(benchmark, "test", test_available, "MNIST")
    train, test_rows = _Rows(raw, raw.train_x, benchmark.inputs), _Rows(raw, raw.test_x, benchmark.inputs)
    n_pixels = raw.train_x[0].numel()
    tasks = []
    shape = (-1, *benchmark.input_shape)  # permuted pixels, kept in the image's shape
    for t in range(benchmark.n_tasks):
        if benchmark.stream == "tuning":  # other permutations; validation from training images
            permutation = torch.randperm(n_pixels, generator=torch_generator(seed, "tuning-permutation", t))
            rest, validation = _holdout(available, benchmark.test_samples_per_task or test_available,
                                        benchmark, seed, t, f"task {t}")
            pick = _subset(len(rest), benchmark.train_samples_per_task, seed, "pool", t)
            pool = rest if pick is None else rest[pick]
            test_x, test_y = train.rows(validation), raw.train_y[validation]
        else:
            permutation = torch.randperm(n_pixels, generator=torch_generator(seed, "permutation", t))
            pool = _subset(available, benchmark.train_samples_per_task, seed, "pool", t)
            test = _subset(test_available, benchmark.test_samples_per_task, seed, "test", t)
            test_x, test_y = test_rows.rows(test), (raw.test_y if test is None else raw.test_y[test])
        ty = raw.train_y if pool is None else raw.train_y[pool]
        tasks.append(Task(
            train.rows(pool)[:, permutation].contiguous().view(shape), ty.clone(),
            test_x[:, permutation].contiguous().view(shape), test_y.clone(), tuple(range(10)),
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
        holder = f"task {t} (classes {list(classes)})"
        for split, index in (("train", train_idx), ("test", test_idx)):
            _check_size(benchmark, split, len(index), holder)
        if benchmark.stream == "tuning":  # validation carved from the task's training images
            rest, validation = _holdout(len(train_idx), benchmark.test_samples_per_task or len(test_idx),
                                        benchmark, seed, t, holder)
            test_x, test_y = raw.train_x[train_idx[validation]], raw.train_y[train_idx[validation]]
            train_idx = train_idx[rest]
        else:
            test = _subset(len(test_idx), benchmark.test_samples_per_task, seed, "test", t)
            test_idx = test_idx if test is None else test_idx[test]
            test_x, test_y = raw.test_x[test_idx], raw.test_y[test_idx]
        pool = _subset(len(train_idx), benchmark.train_samples_per_task, seed, "pool", t)
        train_idx = train_idx if pool is None else train_idx[pool]
        shape = (-1, *benchmark.input_shape)
        tasks.append(Task(
            raw.scaled(raw.train_x[train_idx], benchmark.inputs).view(shape),
            _labels(raw.train_y[train_idx], classes, benchmark),
            raw.scaled(test_x, benchmark.inputs).view(shape), _labels(test_y, classes, benchmark),
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


def phase_data(tasks: list[Task], counts: list[int], phase: int, seed: int, empty=torch.empty) -> PhaseData:
    """The training set of `phase`: counts[t] samples of each task t, drawn without replacement.

    The samples are gathered straight into tensors from `empty(shape, dtype)` (the harness
    process passes shared memory, so the phase reaches the method's process uncopied)."""
    drawn = []
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
        drawn.append((task, task_id, idx))
    if not drawn:
        raise ClbenchError(f"phase {phase} draws no samples")
    total = sum(len(idx) for _, _, idx in drawn)
    first = drawn[0][0]
    x = empty((total, *first.train_x.shape[1:]), dtype=first.train_x.dtype)
    y = empty((total, *first.train_y.shape[1:]), dtype=first.train_y.dtype)
    origin = empty((total,), dtype=torch.long)
    start = 0
    for task, task_id, idx in drawn:
        end = start + len(idx)
        torch.index_select(task.train_x, 0, idx, out=x[start:end])
        torch.index_select(task.train_y, 0, idx, out=y[start:end])
        origin[start:end] = task_id
        start = end
    return PhaseData(x, y, origin, tuple(counts))

