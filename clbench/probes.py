"""The harness's plugin inside every strategy: learning curves, budget accounting, progress.

It holds no data, only a callback into the harness that measures the current model on the
new task's held-out samples, so a method can observe nothing it could learn from.
"""

from __future__ import annotations

from collections.abc import Callable

from avalanche.core import SupervisedPlugin


class PhaseProbe(SupervisedPlugin):
    """Records the new task's accuracy at evenly spaced points of each phase."""

    def __init__(self, measure: Callable[[object, int], float], points: int):
        super().__init__()
        self._measure = measure
        self._points = points
        self._phase = -1
        self._planned = 0
        self._index = 1
        self._progress = None
        self.samples_seen = 0
        self.curve_samples: list[int] = []
        self.curve_accuracy: list[float] = []

    def begin_phase(self, phase: int, planned_samples: int, progress=None) -> None:
        """Called by the harness before `strategy.train` for each phase."""
        self._phase = phase
        self._planned = max(planned_samples, 1)
        self._progress = progress
        self.samples_seen = 0
        self.curve_samples, self.curve_accuracy = [], []
        self._index = 1

    def _due(self) -> int:
        """Samples at which the next curve point is due (ceil of an even split)."""
        return -(-self._planned * self._index // self._points)

    def _record(self, strategy) -> None:
        self.curve_samples.append(self.samples_seen)
        self.curve_accuracy.append(self._measure(strategy.model, self._phase))

    def before_training_exp(self, strategy, *args, **kwargs):
        self._record(strategy)

    def after_training_iteration(self, strategy, *args, **kwargs):
        batch = len(strategy.mb_y)
        self.samples_seen += batch
        if self._progress is not None:
            self._progress.update(batch)
        if self.samples_seen >= self._due():
            self._record(strategy)
            while self._due() <= self.samples_seen:
                self._index += 1

    def after_training_exp(self, strategy, *args, **kwargs):
        if self.curve_samples[-1] != self.samples_seen:
            self._record(strategy)
