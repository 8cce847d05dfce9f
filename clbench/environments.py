"""Learning environments: how many samples of each task a phase rehearses.

An environment turns (number of tasks, new-task samples, seed) into the phase x task
count matrix N, where N[p][t] is the number of training samples of task t shown in phase
p (zero for t > p). Phase p introduces task p, so N[p][p] is the new task and the
entries left of the diagonal are rehearsal. The lag of an old task is k = p - t.

The environment is part of the protocol, never of the method: every method trains on
exactly the data its environment hands it. All kinds are pure functions of their
parameters and the seed (only the stochastic kind uses the seed).

Kinds produce the matrix phase by phase as sparse rows ({task: count} of the non-zero
entries, `rows`), so validating a protocol and estimating its memory never build T x T
Python objects; `matrix` expands them for records and tables.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterator
from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .bounds import MAX_SAMPLES, MAX_TASKS
from .inputs import NotBool
from .seeding import derive_seed

Matrix = list[list[int]]
#: One phase's non-zero counts: {task: count}.
Row = dict[int, int]

# every number is finite (allow_inf_nan=False below) and never a boolean (NotBool)
Fraction = Annotated[float, NotBool, Field(gt=0.0, le=1.0)]
Positive = Annotated[float, NotBool, Field(gt=0.0)]
SampleCount = Annotated[int, NotBool, Field(gt=0, le=MAX_SAMPLES)]


class _Environment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    #: Parameters that mean something else in this kind than a same-named parameter of
    #: another kind: a `--set environment.kind=...` switch never carries them over.
    own_parameters: ClassVar[frozenset[str]] = frozenset()

    new_samples: SampleCount | None = Field(
        default=None,
        description="New-task samples per phase; None means the task's whole training pool.",
    )

    def n_new(self, pool_size: int) -> int:
        return pool_size if self.new_samples is None else self.new_samples

    def rows(self, n_tasks: int, pool_size: int, seed: int = 0) -> Iterator[Row]:
        """Each phase's non-zero counts in turn, as {task: count}."""
        n_new = self.n_new(pool_size)
        for phase in range(n_tasks):
            old = self._rehearsal(phase, n_new) if phase else []
            row = {task: count for task, count in enumerate(old) if count}
            row[phase] = n_new
            yield row

    def matrix(self, n_tasks: int, pool_size: int, seed: int = 0) -> Matrix:
        """The phase x task sample-count matrix for this environment."""
        return dense(self.rows(n_tasks, pool_size, seed), n_tasks)

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        """Counts for the old tasks 0..phase-1 in `phase` (phase >= 1)."""
        raise NotImplementedError

    def largest_count(self, n_tasks: int, pool_size: int) -> int:
        """The most samples of one task any phase draws (must fit in its pool).

        No kind but `count-table` rehearses an old task with more than n_new samples (the
        budgets and fractions are at most 1), so this is n_new without building a matrix.
        """
        return self.n_new(pool_size)

    def largest_phase(self, n_tasks: int, pool_size: int) -> int:
        """An upper bound on the samples one phase trains on (for the memory estimate)."""
        return self.n_new(pool_size) + max(n_tasks - 1, 0) * self.largest_count(n_tasks, pool_size)


class _Budgeted(_Environment):
    """Rehearsal of R = round(r * n_new) old samples per phase, split by lag weights."""

    rehearsal_fraction: Fraction = Field(
        default=0.25, description="Rehearsal budget per phase as a fraction r of n_new."
    )

    def budget(self, n_new: int) -> int:
        return round(self.rehearsal_fraction * n_new)

    def weight(self, lag: int) -> float:
        raise NotImplementedError

    def relative_weight(self, lag: int) -> float:
        """weight(lag) / weight(1), computed so that it cannot underflow to 0 at lag 1."""
        return 1.0

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        weights = [self.weight(phase - task) for task in range(phase)]
        if not all(sys.float_info.min <= w < math.inf for w in weights):
            # extreme but finite parameters (tau=1e308, alpha=1000, beta=1e-5) underflow
            # the weights themselves; their ratios to the most recent task's still split R
            weights = [self.relative_weight(phase - task) for task in range(phase)]
        return apportion(self.budget(n_new), weights)

    def largest_phase(self, n_tasks: int, pool_size: int) -> int:
        n_new = self.n_new(pool_size)
        return n_new + (self.budget(n_new) if n_tasks > 1 else 0)


class Sequential(_Environment):
    """Lower baseline: each phase shows only its new task."""

    kind: Literal["sequential"] = "sequential"

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        return [0] * phase

    def largest_phase(self, n_tasks: int, pool_size: int) -> int:
        return self.n_new(pool_size)


class Cumulative(_Environment):
    """Upper baseline: each phase shows every task seen so far in full."""

    kind: Literal["cumulative"] = "cumulative"

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        return [n_new] * phase


class Uniform(_Budgeted):
    """The budget split evenly over the old tasks."""

    kind: Literal["uniform"] = "uniform"

    def weight(self, lag: int) -> float:
        return 1.0


class Exponential(_Budgeted):
    """The budget split with weights exp(-k / beta)."""

    kind: Literal["exponential"] = "exponential"
    beta: Positive = 1.0

    def weight(self, lag: int) -> float:
        return math.exp(-lag / self.beta)

    def relative_weight(self, lag: int) -> float:
        return math.exp(-(lag - 1) / self.beta)


class PowerLaw(_Budgeted):
    """The budget split with weights (k + tau) ** -alpha: the paper's shape at a fixed budget."""

    kind: Literal["power-law"] = "power-law"
    tau: Positive = 10.0
    alpha: Positive = 5.6

    def weight(self, lag: int) -> float:
        return (lag + self.tau) ** -self.alpha

    def relative_weight(self, lag: int) -> float:
        return math.exp(-self.alpha * math.log((lag + self.tau) / (1 + self.tau)))


class PowerLawUnrestricted(_Environment):
    """The paper's power law with no budget: N = round(n_new * (tau / (tau + k)) ** alpha)."""

    kind: Literal["power-law-unrestricted"] = "power-law-unrestricted"
    tau: Positive = 10.0
    alpha: Positive = 5.6

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        return [
            round(n_new * (self.tau / (self.tau + phase - task)) ** self.alpha)
            for task in range(phase)
        ]

    def largest_phase(self, n_tasks: int, pool_size: int) -> int:
        n_new = self.n_new(pool_size)  # the last phase is the largest: every lag is there
        return n_new + (sum(self._rehearsal(n_tasks - 1, n_new)) if n_tasks > 1 else 0)


class CountTable(_Environment):
    """Explicit counts by lag: counts_by_lag[k] samples of a task introduced k phases ago.

    counts_by_lag[0] is the new task's count, so `new_samples` must be left unset.
    """

    kind: Literal["count-table"] = "count-table"
    counts_by_lag: tuple[Annotated[int, NotBool, Field(ge=0, le=MAX_SAMPLES)], ...] = Field(
        min_length=1, max_length=MAX_TASKS)

    @model_validator(mode="after")
    def _check(self) -> "CountTable":
        if self.new_samples is not None:
            raise ValueError("count-table takes its new-task count from counts_by_lag[0]")
        if self.counts_by_lag[0] <= 0:
            raise ValueError("counts_by_lag[0] (the new task) must be positive")
        return self

    def n_new(self, pool_size: int) -> int:
        return self.counts_by_lag[0]

    def _covering(self, n_tasks: int) -> tuple[int, ...]:
        if len(self.counts_by_lag) < n_tasks:
            raise ValueError(
                f"counts_by_lag has {len(self.counts_by_lag)} entries but the protocol "
                f"has {n_tasks} tasks"
            )
        return self.counts_by_lag[:n_tasks]

    def rows(self, n_tasks: int, pool_size: int, seed: int = 0) -> Iterator[Row]:
        self._covering(n_tasks)
        return super().rows(n_tasks, pool_size, seed)

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        return [self.counts_by_lag[phase - task] for task in range(phase)]

    def largest_count(self, n_tasks: int, pool_size: int) -> int:
        return max(self._covering(n_tasks))

    def largest_phase(self, n_tasks: int, pool_size: int) -> int:
        return sum(self._covering(n_tasks))


class StochasticPowerLaw(_Environment):
    """Old tasks recur at random, as people meet skills again (Anderson & Schooler, 1991).

    In each phase, an old task last met d phases ago recurs with probability
    recurrence_probability * d ** -alpha; a recurrence brings
    round(recurrence_fraction * n_new) samples. The draws come from the run seed.
    """

    kind: Literal["stochastic-power-law"] = "stochastic-power-law"
    #: its alpha is the recurrence exponent (default 1.0), not the power laws' (5.6)
    own_parameters: ClassVar[frozenset[str]] = frozenset({"alpha"})
    recurrence_probability: Fraction = 0.8
    alpha: Positive = 1.0
    recurrence_fraction: Fraction = 0.25

    def rows(self, n_tasks: int, pool_size: int, seed: int = 0) -> Iterator[Row]:
        n_new = self.n_new(pool_size)
        count = round(self.recurrence_fraction * n_new)
        rng = random.Random(derive_seed(seed, "environment", self.kind))
        last_met: list[int] = []  # O(T) state; each row holds only the tasks that recur
        for phase in range(n_tasks):
            row: Row = {}
            for task, last in enumerate(last_met):
                chance = self.recurrence_probability * (phase - last) ** -self.alpha
                if rng.random() < chance:
                    if count:
                        row[task] = count
                    last_met[task] = phase
            row[phase] = n_new
            last_met.append(phase)
            yield row

    def largest_phase(self, n_tasks: int, pool_size: int) -> int:
        n_new = self.n_new(pool_size)  # every old task recurring at once
        return n_new + max(n_tasks - 1, 0) * round(self.recurrence_fraction * n_new)


Environment = Annotated[
    Union[
        Sequential,
        Cumulative,
        Uniform,
        Exponential,
        PowerLaw,
        PowerLawUnrestricted,
        CountTable,
        StochasticPowerLaw,
    ],
    Field(discriminator="kind"),
]

ENVIRONMENT_KINDS: dict[str, type[_Environment]] = {
    cls.model_fields["kind"].default: cls
    for cls in (
        Sequential,
        Cumulative,
        Uniform,
        Exponential,
        PowerLaw,
        PowerLawUnrestricted,
        CountTable,
        StochasticPowerLaw,
    )
}


def dense(rows: Iterator[Row], n_tasks: int) -> Matrix:
    """Sparse rows expanded to the full phase x task matrix."""
    matrix = []
    for row in rows:
        line = [0] * n_tasks
        for task, count in row.items():
            line[task] = count
        matrix.append(line)
    return matrix


def apportion(total: int, weights: list[float]) -> list[int]:
    """Split the integer `total` in proportion to `weights`, summing exactly to `total`.

    Largest-remainder rounding; ties go to the later entry (the more recent task), so the
    result is deterministic.
    """
    weight_sum = sum(weights)
    shares = [total * w / weight_sum for w in weights]
    counts = [math.floor(s) for s in shares]
    leftover = total - sum(counts)
    order = sorted(range(len(weights)), key=lambda i: (shares[i] - counts[i], i), reverse=True)
    for i in order[:leftover]:
        counts[i] += 1
    return counts
