"""The harness's own accuracy measurement: batched, in inference mode, never via the method.

Methods never receive test data; the harness evaluates the strategy's model on each
task's test tensors after every phase (and on the new task during the phase, for the
learning curve).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device) -> float:
    """Top-1 accuracy of `model` on (x, y), restoring the model's train/eval mode afterwards."""
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, len(y), batch_size):
            xb = x[start:start + batch_size].to(device, non_blocking=True)
            yb = y[start:start + batch_size].to(device, non_blocking=True)
            correct += (model(xb).argmax(dim=1) == yb).sum().item()
    finally:
        model.train(was_training)
    return correct / len(y)


class TaskEvaluator:
    """Holds the test sets (on the run's device) and measures a model on all of them."""

    def __init__(self, tasks, batch_size: int, device, curve_samples: int | None):
        self.batch_size = batch_size
        self.device = device
        self._test = [(t.test_x.to(device), t.test_y.to(device)) for t in tasks]
        self._curve = [
            (x[:curve_samples], y[:curve_samples]) if curve_samples else (x, y) for x, y in self._test
        ]

    def all_tasks(self, model: nn.Module) -> list[float]:
        return [accuracy(model, x, y, self.batch_size, self.device) for x, y in self._test]

    def curve_point(self, model: nn.Module, task: int) -> float:
        x, y = self._curve[task]
        return accuracy(model, x, y, self.batch_size, self.device)
