"""Tasks and phases: benchmark data cut into tasks, then into per-phase training sets.

Everything lives in memory as float32 tensors that are already standardised, flattened
and (for permuted MNIST) permuted, so nothing runs per sample while training. All random
choices come from the run seed through named streams (see `seeding`).
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
    """One task: its training pool, its test set and the classes it contains."""

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
    """Read the benchmark's dataset into the process cache (raises ClbenchError if missing)."""
    load_raw(RAW_DATASET[benchmark.name], data_root)


def load_tasks(benchmark: BenchmarkSpec, data_root: Path, seed: int) -> list[Task]:
    """The benchmark's tasks for one seed (data read from disk once per process)."""
    raw = load_raw(RAW_DATASET[benchmark.name], data_root)
    if benchmark.name == "permuted-mnist":
        return _permuted_tasks(benchmark, raw, seed)
    return _split_tasks(benchmark, raw, seed)


def _subset(size: int, wanted: int | None, seed: int, *stream: object) -> torch.Tensor | None:
    """Seeded indices of `wanted` of `size` items, or None to keep all of them in order."""
    if wanted is None or wanted >= size:
        return None
    return torch.randperm(size, generator=torch_generator(seed, *stream))[:wanted].sort().values


def _permuted_tasks(benchmark: BenchmarkSpec, raw: RawDataset, seed: int) -> list[Task]:
    train_x, test_x = raw.standardised_splits
    available = len(train_x)
    if benchmark.train_samples_per_task > available:
        raise ClbenchError(
            f"benchmark.train_samples_per_task={benchmark.train_samples_per_task} exceeds the "
            f"{available} MNIST training images"
        )
    tasks = []
    for t in range(benchmark.n_tasks):
        permutation = torch.randperm(train_x.shape[1], generator=torch_generator(seed, "permutation", t))
        pool = _subset(available, benchmark.train_samples_per_task, seed, "pool", t)
        test = _subset(len(test_x), benchmark.test_samples_per_task, seed, "test", t)
        tx, ty = (train_x, raw.train_y) if pool is None else (train_x[pool], raw.train_y[pool])
        ex, ey = (test_x, raw.test_y) if test is None else (test_x[test], raw.test_y[test])
        tasks.append(Task(
            tx[:, permutation].contiguous(), ty.clone(),
            ex[:, permutation].contiguous(), ey.clone(), tuple(range(10)),
        ))
    return tasks


def _split_tasks(benchmark: BenchmarkSpec, raw: RawDataset, seed: int) -> list[Task]:
    train_x, test_x = raw.standardised_splits
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
        if len(train_idx) < benchmark.train_samples_per_task:
            raise ClbenchError(
                f"task {t} (classes {list(classes)}) has only {len(train_idx)} training samples; "
                f"set benchmark.train_samples_per_task to at most that"
            )
        pool = _subset(len(train_idx), benchmark.train_samples_per_task, seed, "pool", t)
        test = _subset(len(test_idx), benchmark.test_samples_per_task, seed, "test", t)
        train_idx = train_idx if pool is None else train_idx[pool]
        test_idx = test_idx if test is None else test_idx[test]
        tasks.append(Task(
            train_x[train_idx], raw.train_y[train_idx],
            test_x[test_idx], raw.test_y[test_idx], classes,
        ))
    return tasks


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

