"""The harness's plugin inside every strategy: learning curves, budget accounting, progress.

The probe sits in the strategy's plugin list, where a method can see it, so it holds no
data and no reference to the harness's evaluator: only an opaque token, looked up in a
harness-side table for each measurement (tests/test_isolation.py walks every object a
method is given and finds no test data). Curve points are scheduled by optimizer steps (the phase's planned steps, split evenly),
so a method that adds its own memory samples to each minibatch gets the same number of
points as one that does not; the x value of each point is the number of training
samples the method actually processed, its memory samples included. The probe holds no
data, only a callback into the harness that measures the new task's accuracy. Under an
iteration budget (`training.iterations`) the probe also ends each phase at its last step.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import torch
from avalanche.core import SupervisedPlugin

from .errors import NonFiniteLoss, RunTimeLimit

#: token -> measuring callback; kept here, outside anything handed to a method.
_MEASURES: dict[int, Callable[[object, int], float]] = {}
_TOKENS = itertools.count(1)


def register_measure(measure: Callable[[object, int], float]) -> int:
    """Keep `measure` on the harness side; the returned token is all a probe holds."""
    token = next(_TOKENS)
    _MEASURES[token] = measure
    return token


def release_measure(token: int) -> None:
    _MEASURES.pop(token, None)


class PhaseProbe(SupervisedPlugin):
    """Records the new task's accuracy at evenly spaced points of each phase."""

    def __init__(self, token: int, points: int, deadline: float | None = None,
                 step_budget: int | None = None):
        super().__init__()
        self._step_budget = step_budget  # optimizer steps per phase, or None: the epochs decide
        self._token = token
        self._deadline = deadline  # time.perf_counter() value after which the run is stopped
        self._points = points
        self._phase = -1
        self._planned_steps = 1
        self._index = 1
        self._progress = None
        self.steps = 0
        self.samples_seen = 0
        self.measure_seconds = 0.0
        self.curve_samples: list[int] = []
        self.curve_accuracy: list[float] = []

    def begin_phase(self, phase: int, planned_steps: int, progress=None) -> None:
        """Called by the harness before `strategy.train` for each phase."""
        self._phase = phase
        self._planned_steps = max(planned_steps, 1)
        self._progress = progress
        self.steps = 0
        self.samples_seen = 0
        self.measure_seconds = 0.0
        self.curve_samples, self.curve_accuracy = [], []
        self._index = 1

    def _due(self) -> int:
        """Step at which the next curve point is due (ceil of an even split)."""
        return -(-self._planned_steps * self._index // self._points)

    def _check_loss(self, strategy) -> None:
        loss = getattr(strategy, "loss", None)
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteLoss(f"non-finite training loss ({loss.detach().flatten()[0].item()}) "
                                f"in phase {self._phase} after {self.steps} steps")

    def _record(self, strategy) -> None:
        started = time.perf_counter()
        self.curve_samples.append(self.samples_seen)
        self.curve_accuracy.append(_MEASURES[self._token](strategy.model, self._phase))
        self.measure_seconds += time.perf_counter() - started

    def before_training_exp(self, strategy, *args, **kwargs):
        self._record(strategy)

    def after_training_iteration(self, strategy, *args, **kwargs):
        self.steps += 1
        self.samples_seen += len(strategy.mb_y)
        if self._deadline is not None and time.perf_counter() > self._deadline:
            raise RunTimeLimit(f"run exceeded its time limit in phase {self._phase} after {self.steps} steps")
        if self._progress is not None:
            self._progress.update(1)
        if self.steps >= self._due():
            self._check_loss(strategy)
            self._record(strategy)
            while self._due() <= self.steps:
                self._index += 1
        if self._step_budget is not None and self.steps >= self._step_budget:
            # Avalanche leaves the minibatch loop (and the epochs) at the next minibatch; a
            # method that trains on regardless fails the audit's step limit (clbench.audit)
            strategy.stop_training()

    def after_training_exp(self, strategy, *args, **kwargs):
        self._check_loss(strategy)
        if self.curve_samples[-1] != self.samples_seen:
            self._record(strategy)
