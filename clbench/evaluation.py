"""The harness's own accuracy measurement: batched, in inference mode, never via the method.

Runs in the harness process (clbench.isolation), which holds the test sets: the method's
process never does. The harness evaluates the strategy's model on each task's test
tensors after every phase (and on the new task during the phase, for the learning curve).
In the task-incremental scenario each test set is given its task label (`task`), as
Avalanche's `avalanche_forward` gives it: multi-task modules get `model(x, task_labels)`.
"""

from __future__ import annotations

import torch
from torch import nn


def forward(model: nn.Module, x: torch.Tensor, task: int | None) -> torch.Tensor:
    """`model(x)`, or with every sample's task label when `task` is given and the model
    takes task labels (an Avalanche `MultiTaskModule`, as `avalanche_forward` decides)."""
    if task is None:
        return model(x)
    from avalanche.models import MultiTaskModule  # only task-incremental protocols get here

    if isinstance(model, MultiTaskModule):
        return model(x, torch.full((len(x),), task, dtype=torch.long, device=x.device))
    return model(x)


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device,
             task: int | None = None) -> float:
    """Top-1 accuracy of `model` on (x, y), restoring the model's train/eval mode afterwards.

    `task`: the task label every sample gets (task-incremental protocols), else None.
    """
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, len(y), batch_size):
            xb = x[start:start + batch_size].to(device, non_blocking=True)
            yb = y[start:start + batch_size].to(device, non_blocking=True)
            correct += (forward(model, xb, task).argmax(dim=1) == yb).sum().item()
    finally:
        model.train(was_training)
    return correct / len(y)


class TaskEvaluator:
    """Holds the test sets (on the run's device) and measures a model on all of them.

    `task_aware`: give test set t the task label t (the task-incremental scenario).
    """

    def __init__(self, tasks, batch_size: int, device, curve_samples: int | None,
                 task_aware: bool = False):
        self.task_aware = task_aware
        self.batch_size = batch_size
        self.device = device
        self.curve_size = curve_samples
        self.test_sets = [(t.test_x.to(device), t.test_y.to(device)) for t in tasks]
        self.curve_sets = [
            (x[:curve_samples], y[:curve_samples]) if curve_samples else (x, y) for x, y in self.test_sets
        ]

    def all_tasks(self, model: nn.Module) -> list[float]:
        return [accuracy(model, x, y, self.batch_size, self.device, self._task(t))
                for t, (x, y) in enumerate(self.test_sets)]

    def curve_point(self, model: nn.Module, task: int) -> float:
        x, y = self.curve_sets[task]
        return accuracy(model, x, y, self.batch_size, self.device, self._task(task))

    def _task(self, task: int) -> int | None:
        return task if self.task_aware else None
