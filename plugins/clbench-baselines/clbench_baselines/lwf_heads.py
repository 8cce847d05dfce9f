"""LwF on a multi-head model with one forward pass per minibatch.

Avalanche 0.6's LwF, on a multi-head (task-incremental) model, forwards every minibatch a
second time to get the outputs of all heads for the distillation loss (its own comment:
"we need to call forward again. TODO: can we avoid this?"). That doubles the trunk's
compute, updates BatchNorm statistics twice per step, and the harness rightly counts the
second pass against the forward budget: at 25 epochs a phase goes over it by a whole
epoch's worth of samples. Li & Hoiem's LwF runs the shared trunk once and reads every head
from it, and so does this: the strategy's forward keeps the old heads' outputs on the
trunk features it has already computed (under the same autocast), and the distillation
uses them. The loss is Avalanche's; without dropout the two are equal (tests).
Single-head models (class- and domain-incremental) take Avalanche's path unchanged.
"""

from __future__ import annotations

import torch
from avalanche.models import avalanche_forward
from avalanche.training import LearningWithoutForgetting
from avalanche.training.plugins import LwFPlugin
from avalanche.training.supervised import LwF

from clbench.models.heads import MultiHeadNetwork


class SharedTrunkDistillation(LearningWithoutForgetting):
    """Avalanche's distillation, reading the current model's old heads from `old_heads`."""

    def __init__(self, alpha=1.0, temperature=2.0):
        super().__init__(alpha, temperature)
        #: task label -> that head's output on the current minibatch, set by the forward
        self.old_heads: dict[int, torch.Tensor] | None = None

    def _lwf_penalty(self, out, x, curr_model):
        old_heads, self.old_heads = self.old_heads, None  # one minibatch's, never kept
        if self.prev_model is None or old_heads is None:
            return super()._lwf_penalty(out, x, curr_model)
        with torch.no_grad():
            y_prev = avalanche_forward(self.prev_model, x, None)
        loss = 0
        for task_id in y_prev:  # the order Avalanche sums in
            if task_id in self.prev_classes_by_task:
                loss += self._distillation_loss(old_heads[task_id], y_prev[task_id],
                                                self.prev_classes_by_task[task_id])
        return loss


class SingleForwardLwF(LwF):
    """`avalanche.training.supervised.LwF` whose training forward also yields the old heads."""

    def __init__(self, *, alpha: float, temperature: float, **kwargs):
        super().__init__(alpha=alpha, temperature=temperature, **kwargs)
        plugin = next(p for p in self.plugins if isinstance(p, LwFPlugin))
        plugin.lwf = self.distillation = SharedTrunkDistillation(alpha, temperature)

    def forward(self):
        model, distillation = self.model, self.distillation
        if not (model.training and isinstance(model, MultiHeadNetwork) and distillation.prev_model is not None):
            return super().forward()
        out, features = model(self.mb_x, self.mb_task_id, return_features=True)
        heads = model.classifier.heads
        distillation.old_heads = {t: heads[t](features) for t in distillation.prev_classes_by_task}
        return out
