"""The harness's plugin inside every strategy: learning curves, budget accounting, progress.

Curve points are scheduled by optimizer steps (the phase's planned steps, split evenly),
so a method that adds its own memory samples to each minibatch gets the same number of
points as one that does not; the x value of each point is the number of training
samples the method actually processed, its memory samples included. The probe holds no
data, only a callback into the harness that measures the new task's accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from avalanche.core import SupervisedPlugin


class PhaseProbe(SupervisedPlugin):
    """Records the new task's accuracy at evenly spaced points of each phase."""

    def __init__(self, measure: Callable[[object, int], float], points: int):
        super().__init__()
        self._measure = measure
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

    def _record(self, strategy) -> None:
        started = time.perf_counter()
        self.curve_samples.append(self.samples_seen)
        self.curve_accuracy.append(self._measure(strategy.model, self._phase))
        self.measure_seconds += time.perf_counter() - started

    def before_training_exp(self, strategy, *args, **kwargs):
        self._record(strategy)

    def after_training_iteration(self, strategy, *args, **kwargs):
        self.steps += 1
        self.samples_seen += len(strategy.mb_y)
        if self._progress is not None:
            self._progress.update(1)
        if self.steps >= self._due():
            self._record(strategy)
            while self._due() <= self.steps:
                self._index += 1

    def after_training_exp(self, strategy, *args, **kwargs):
        if self.curve_samples[-1] != self.samples_seen:
            self._record(strategy)
