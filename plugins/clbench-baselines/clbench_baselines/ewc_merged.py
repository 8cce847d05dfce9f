"""Offline EWC at constant cost per step: all past penalties merged into one quadratic.

Offline ("separate") EWC adds, for every past phase t, lambda * sum_i F_t,i (theta_i -
theta*_t,i)^2. Avalanche keeps every (F_t, theta*_t) pair and sums over them at every
training step, so each step costs more as phases accumulate. A sum of quadratics in
theta is itself one quadratic:

    sum_t F_t (theta - theta*_t)^2 = F (theta - mu)^2 + const,
    F = sum_t F_t,  mu = (sum_t F_t theta*_t) / F    (mu = theta where F = 0),

so its gradient, 2 lambda (F theta - sum_t F_t theta*_t), is identical for every theta;
only the loss value differs by a constant. Keeping F and sum_t F_t theta*_t (two
tensors per parameter) makes the penalty cost independent of the number of past phases.
The Fisher pass is Avalanche's own `compute_importances`, unchanged, or the per-sample
estimate of `fisher` (``fisher="per-sample"``, at the true or the predicted labels).
"""

from __future__ import annotations

import torch
from avalanche.training.plugins import EWCPlugin
from avalanche.training.utils import copy_params_dict

from .fisher import FisherChoice


class MergedEWCPlugin(FisherChoice, EWCPlugin):
    """`EWCPlugin(mode="separate")` with the per-phase penalties merged (same gradients)."""

    def __init__(self, ewc_lambda: float, fisher: str = "minibatch", fisher_labels: str = "true"):
        super().__init__(ewc_lambda=ewc_lambda, mode="separate")
        self.choose_fisher(fisher, fisher_labels)
        self.fisher: dict[str, torch.Tensor] = {}
        self.weighted_anchor: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def before_backward(self, strategy, **kwargs):
        if not self.fisher:
            return
        penalty = 0.0
        for name, parameter in strategy.model.named_parameters():
            fisher = self.fisher.get(name)
            if fisher is None or fisher.shape != parameter.shape:
                continue  # parameters created after the last phase carry no penalty
            penalty = penalty + (fisher * (parameter - self.anchor[name]).pow(2)).sum()
        strategy.loss += self.ewc_lambda * penalty

    def after_training_exp(self, strategy, **kwargs):
        importances = self.compute_importances(
            strategy.model, strategy._criterion, strategy.optimizer,
            strategy.experience.dataset, strategy.device, strategy.train_mb_size,
            num_workers=kwargs.get("num_workers", 0),
        )
        params = copy_params_dict(strategy.model)
        self.add_phase({n: i.data for n, i in importances.items()}, {n: p.data for n, p in params.items()})

    def add_phase(self, fishers: dict[str, torch.Tensor], thetas: dict[str, torch.Tensor]) -> None:
        """Fold one phase's (F_t, theta*_t) into the merged quadratic."""
        for name, fisher in fishers.items():
            theta = thetas[name]
            if name in self.fisher and self.fisher[name].shape == fisher.shape:
                self.fisher[name] = self.fisher[name] + fisher
                self.weighted_anchor[name] = self.weighted_anchor[name] + fisher * theta
            else:
                self.fisher[name] = fisher.clone()
                self.weighted_anchor[name] = fisher * theta
            total = self.fisher[name]
            self.anchor[name] = torch.where(
                total > 0, self.weighted_anchor[name] / total.clamp_min(1e-38), theta
            )
