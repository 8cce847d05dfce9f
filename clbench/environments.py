"""Learning environments: how many samples of each task a phase rehearses.

An environment turns (number of tasks, new-task samples, seed) into the phase x task
count matrix N, where N[p][t] is the number of training samples of task t shown in phase
p (zero for t > p). Phase p introduces task p, so N[p][p] is the new task and the
entries left of the diagonal are rehearsal. The lag of an old task is k = p - t.

The environment is part of the protocol, never of the method: every method trains on
exactly the data its environment hands it. All kinds are pure functions of their
parameters and the seed (only the stochastic kind uses the seed).
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .seeding import derive_seed

Matrix = list[list[int]]

Fraction = Annotated[float, Field(gt=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]


class _Environment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    new_samples: Annotated[int, Field(gt=0)] | None = Field(
        default=None,
        description="New-task samples per phase; None means the task's whole training pool.",
    )

    def n_new(self, pool_size: int) -> int:
        return pool_size if self.new_samples is None else self.new_samples

    def matrix(self, n_tasks: int, pool_size: int, seed: int = 0) -> Matrix:
        """The phase x task sample-count matrix for this environment."""
        n_new = self.n_new(pool_size)
        rows = []
        for phase in range(n_tasks):
            old = self._rehearsal(phase, n_new) if phase else []
            rows.append(old + [n_new] + [0] * (n_tasks - phase - 1))
        return rows

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        """Counts for the old tasks 0..phase-1 in `phase` (phase >= 1)."""
        raise NotImplementedError

    def largest_count(self, n_tasks: int, pool_size: int) -> int:
        """The most samples of one task any phase draws (must fit in its pool)."""
        return max(max(row) for row in self.matrix(n_tasks, pool_size, 0))


class _Budgeted(_Environment):
    """Rehearsal of R = round(r * n_new) old samples per phase, split by lag weights."""

    rehearsal_fraction: Fraction = Field(
        default=0.25, description="Rehearsal budget per phase as a fraction r of n_new."
    )

    def budget(self, n_new: int) -> int:
        return round(self.rehearsal_fraction * n_new)

    def weight(self, lag: int) -> float:
        raise NotImplementedError

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        weights = [self.weight(phase - task) for task in range(phase)]
        return apportion(self.budget(n_new), weights)


class Sequential(_Environment):
    """Lower baseline: each phase shows only its new task."""

    kind: Literal["sequential"] = "sequential"

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        return [0] * phase


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


class PowerLaw(_Budgeted):
    """The budget split with weights (k + tau) ** -alpha: the paper's shape at a fixed budget."""

    kind: Literal["power-law"] = "power-law"
    tau: Positive = 10.0
    alpha: Positive = 5.6

    def weight(self, lag: int) -> float:
        return (lag + self.tau) ** -self.alpha


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


class CountTable(_Environment):
    """Explicit counts by lag: counts_by_lag[k] samples of a task introduced k phases ago.

    counts_by_lag[0] is the new task's count, so `new_samples` must be left unset.
    """

    kind: Literal["count-table"] = "count-table"
    counts_by_lag: tuple[Annotated[int, Field(ge=0)], ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "CountTable":
        if self.new_samples is not None:
            raise ValueError("count-table takes its new-task count from counts_by_lag[0]")
        if self.counts_by_lag[0] <= 0:
            raise ValueError("counts_by_lag[0] (the new task) must be positive")
        return self

    def n_new(self, pool_size: int) -> int:
        return self.counts_by_lag[0]

    def matrix(self, n_tasks: int, pool_size: int, seed: int = 0) -> Matrix:
        if len(self.counts_by_lag) < n_tasks:
            raise ValueError(
                f"counts_by_lag has {len(self.counts_by_lag)} entries but the protocol "
                f"has {n_tasks} tasks"
            )
        return super().matrix(n_tasks, pool_size, seed)

    def _rehearsal(self, phase: int, n_new: int) -> list[int]:
        return [self.counts_by_lag[phase - task] for task in range(phase)]


class StochasticPowerLaw(_Environment):
    """Old tasks recur at random, as people meet skills again (Anderson & Schooler, 1991).

    In each phase, an old task last met d phases ago recurs with probability
    recurrence_probability * d ** -alpha; a recurrence brings
    round(recurrence_fraction * n_new) samples. The draws come from the run seed.
    """

    kind: Literal["stochastic-power-law"] = "stochastic-power-law"
    recurrence_probability: Fraction = 0.8
    alpha: Positive = 1.0
    recurrence_fraction: Fraction = 0.25

    def matrix(self, n_tasks: int, pool_size: int, seed: int = 0) -> Matrix:
        n_new = self.n_new(pool_size)
        count = round(self.recurrence_fraction * n_new)
        rng = random.Random(derive_seed(seed, "environment", self.kind))
        last_met: list[int] = []
        rows = []
        for phase in range(n_tasks):
            row = [0] * n_tasks
            for task, last in enumerate(last_met):
                chance = self.recurrence_probability * (phase - last) ** -self.alpha
                if rng.random() < chance:
                    row[task] = count
                    last_met[task] = phase
            row[phase] = n_new
            last_met.append(phase)
            rows.append(row)
        return rows

    def largest_count(self, n_tasks: int, pool_size: int) -> int:
        return self.n_new(pool_size)


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
