"""The Avalanche plugin behind `l2-anchor`."""

from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin


class L2AnchorPlugin(SupervisedPlugin):
    """Adds strength / 2 * sum((theta - theta_prev) ** 2) to the loss after the first phase."""

    def __init__(self, strength: float):
        super().__init__()
        self.strength = strength
        self.anchor: list[torch.Tensor] | None = None

    def before_backward(self, strategy, **kwargs):
        if self.anchor is None or self.strength == 0:
            return
        penalty = sum(
            ((p - a) ** 2).sum() for p, a in zip(strategy.model.parameters(), self.anchor)
        )
        strategy.loss += self.strength / 2 * penalty

    def after_training_exp(self, strategy, **kwargs):
        self.anchor = [p.detach().clone() for p in strategy.model.parameters()]
