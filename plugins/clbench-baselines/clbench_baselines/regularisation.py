"""Regularisation and distillation baselines: EWC, online EWC, SI, MAS and LwF.

None of them stores training samples (`stored_exemplars` is 0); they keep parameter
snapshots, importance weights or a copy of the previous model instead.
"""

from __future__ import annotations

import math

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from clbench import Method, StrategyContext

from . import checkpointing
from ._base import ALL_SCENARIOS, Hyperparameters, no_exemplars


class EWCHyperparameters(Hyperparameters):
    """Offline EWC (Kirkpatrick et al., PNAS 2017), Avalanche's ``mode="separate"``.

    Default ``ewc_lambda=500`` is the value of the early public code of the power-law paper
    (Gandhi et al., arXiv 2401.10393; see docs/power-law-protocol.md). Avalanche's penalty
    is ``ewc_lambda * sum_t sum_i F_t,i (theta_i - theta*_t,i)^2`` (no 1/2), with F the
    squared minibatch gradients averaged over the phase's training data by default, or the
    squared per-sample gradients (``fisher="per-sample"``, the papers' estimate, about
    batch-size times larger; `fisher` module), each at the sample's true label or, as van
    de Ven's code by default, at the predicted one (``fisher_labels="predicted"``).
    van de Ven's penalty carries a factor 1/2 that this one lacks: his lambda is twice
    clbench's (``ewc_lambda = lambda_vdV / 2``).
    """

    added_later: ClassVar[tuple[str, ...]] = ("fisher", "fisher_labels")

    ewc_lambda: float = Field(500.0, ge=0, description="penalty weight")
    penalty: Literal["merged", "per-task"] = Field(
        "merged",
        description="'merged': one quadratic per parameter, constant cost (same gradients); "
                    "'per-task': Avalanche's sum over past phases, cost grows with phases",
    )
    fisher: Literal["minibatch", "per-sample"] = Field(
        "minibatch",
        description="'minibatch': Avalanche's squared minibatch-mean gradients; 'per-sample': "
                    "squared per-sample gradients, as Kirkpatrick et al. and van de Ven's code",
    )
    fisher_labels: Literal["true", "predicted"] = Field(
        "true", description="per-sample Fisher only: each sample's loss at its true label (the "
                            "empirical Fisher) or at the predicted one (van de Ven's default)")

    @model_validator(mode="after")
    def _labels_need_per_sample(self):
        _check_fisher_labels(self)
        return self


def _check_fisher_labels(hp) -> None:
    if hp.fisher == "minibatch" and hp.fisher_labels != "true":
        raise ValueError("fisher_labels='predicted' needs fisher='per-sample' (Avalanche's minibatch "
                         "estimate always uses the true labels)")


class OnlineEWCHyperparameters(Hyperparameters):
    """Online EWC (Schwarz et al., ICML 2018), Avalanche's ``mode="online"``.

    One penalty whose importance is ``decay_factor * old + new`` after each phase.
    Defaults: ``ewc_lambda=500`` as for offline EWC (the early power-law code), so the two
    differ only in how importances accumulate; ``decay_factor=0.1`` is the default of
    Avalanche's examples/ewc_mnist.py (``--decay_factor``). van de Ven's penalty is
    ``lambda/2 * gamma * F`` with F accumulated as here, so his (lambda, gamma) is
    clbench's ``ewc_lambda = lambda * gamma / 2``.
    """

    added_later: ClassVar[tuple[str, ...]] = ("fisher", "fisher_labels")

    ewc_lambda: float = Field(500.0, ge=0, description="penalty weight")
    decay_factor: float = Field(0.1, ge=0, le=1, description="decay of the old importances (gamma)")
    fisher: Literal["minibatch", "per-sample"] = Field(
        "minibatch", description="the Fisher estimate, as for ewc")
    fisher_labels: Literal["true", "predicted"] = Field(
        "true", description="per-sample Fisher only: the labels, as for ewc")

    @model_validator(mode="after")
    def _labels_need_per_sample(self):
        _check_fisher_labels(self)
        return self


class SIHyperparameters(Hyperparameters):
    """Synaptic Intelligence (Zenke, Poole & Ganguli, ICML 2017).

    Defaults ``si_lambda=0.1`` (c) and ``eps=0.1`` (xi) are the permuted-MNIST settings of
    ContinualAI/continual-learning-baselines, experiments/permuted_mnist/
    synaptic_intelligence.py, which reproduces the paper's permuted-MNIST result with
    Avalanche (its Split-MNIST file uses c=1, xi=1e-3).
    """

    si_lambda: float = Field(0.1, ge=0, description="surrogate-loss strength c")
    eps: float = Field(0.1, gt=0, description="damping xi")


class MASHyperparameters(Hyperparameters):
    """Memory Aware Synapses (Aljundi et al., ECCV 2018).

    Defaults ``lambda_reg=1.0`` and ``alpha=0.5`` are the defaults of Avalanche's ``MAS``
    strategy and ``MASPlugin`` (and of its examples/mas_mnist.py).
    """

    lambda_reg: float = Field(1.0, ge=0, description="penalty weight")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the previous importance")


class LwFHyperparameters(Hyperparameters):
    """Learning without Forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2017).

    Defaults ``alpha=1`` (the paper's lambda_o) and ``temperature=2`` (the paper's T) are
    also the defaults of Avalanche's ``LwFPlugin``. With clbench's single shared head the
    distillation covers the output units of every class seen in earlier phases.
    """

    alpha: float = Field(1.0, ge=0, description="distillation weight")
    temperature: float = Field(2.0, gt=0, description="softmax temperature")


def make_ewc(ctx: StrategyContext, hp: EWCHyperparameters):
    """Offline EWC: Avalanche's `EWC(mode="separate")`, or the same penalty merged.

    Both use Avalanche's Fisher pass after each phase; `penalty="merged"` (the default) sums
    the per-phase quadratics into one (see `ewc_merged`), so every step costs the same.
    """
    if hp.penalty == "per-task":
        return _ewc_strategy(ctx, hp, ewc_lambda=hp.ewc_lambda, mode="separate")
    from avalanche.training.templates import SupervisedTemplate

    from .ewc_merged import MergedEWCPlugin

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(MergedEWCPlugin(hp.ewc_lambda, fisher=hp.fisher, fisher_labels=hp.fisher_labels))
    return SupervisedTemplate(**kwargs)


def _ewc_strategy(ctx: StrategyContext, hp, **ewc):
    """Avalanche's `EWC` strategy, or the same template with the per-sample Fisher plugin."""
    if hp.fisher == "minibatch":
        from avalanche.training.supervised import EWC

        return EWC(**ctx.strategy_kwargs(), **ewc)
    from avalanche.training.templates import SupervisedTemplate

    from .fisher import PerSampleEWCPlugin

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(PerSampleEWCPlugin(fisher_labels=hp.fisher_labels, **ewc))
    return SupervisedTemplate(**kwargs)


def make_online_ewc(ctx: StrategyContext, hp: OnlineEWCHyperparameters):
    """`avalanche.training.EWC` with a single decayed penalty (constant cost per phase)."""
    return _ewc_strategy(ctx, hp, ewc_lambda=hp.ewc_lambda, mode="online",
                         decay_factor=hp.decay_factor)


def make_si(ctx: StrategyContext, hp: SIHyperparameters):
    """Avalanche's `SynapticIntelligence`, i.e. a `SupervisedTemplate` with the SI plugin.

    Built from its two parts so the plugin can be `_si_plugin`'s CPU-safe subclass.
    """
    from avalanche.training.templates import SupervisedTemplate

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(_si_plugin(si_lambda=hp.si_lambda, eps=hp.eps))
    return SupervisedTemplate(**kwargs)


def _si_plugin(si_lambda: float, eps: float):
    """Avalanche 0.6's `SynapticIntelligencePlugin`, with weight snapshots that are copies.

    Its `extract_weights` stores ``param.detach().cpu().flatten()``: on a GPU that is a
    copy, but on the CPU it is a view of the live parameter, so the reference weights,
    the before/after-step weights and hence every importance stay zero and SI trains
    exactly like `naive`. This subclass runs the plugin's hooks with a version of
    `extract_weights` that clones, and consolidates importances without Avalanche's
    clamp to 0.001 (see `after_training_exp`).
    """
    from contextlib import contextmanager

    import torch
    from avalanche.training.plugins import SynapticIntelligencePlugin as Plugin

    @torch.no_grad()
    def extract_weight_copies(model, target, excluded_parameters):
        for name, param in Plugin.allowed_parameters(model, excluded_parameters):
            target[name].data = param.detach().flatten().cpu().clone()

    @contextmanager
    def copying_snapshots():
        original = Plugin.__dict__["extract_weights"]
        Plugin.extract_weights = staticmethod(extract_weight_copies)
        try:
            yield
        finally:
            Plugin.extract_weights = original

    class CopyingSynapticIntelligencePlugin(Plugin):
        def before_training_exp(self, strategy, **kwargs):
            with copying_snapshots():
                super().before_training_exp(strategy, **kwargs)

        def before_training_iteration(self, strategy, **kwargs):
            with copying_snapshots():
                super().before_training_iteration(strategy, **kwargs)

        def after_training_iteration(self, strategy, **kwargs):
            with copying_snapshots():
                super().after_training_iteration(strategy, **kwargs)

        def after_training_exp(self, strategy, **kwargs):
            # Avalanche 0.6 clamps every importance to at most 0.001 here (clip_to=0.001),
            # which Zenke et al. 2017 do not: it makes si_lambda about a thousand times
            # weaker on the weights that matter, so SI trained almost like naive. Unclamped,
            # si_lambda is the paper's c.
            with copying_snapshots():
                Plugin.update_ewc_data(strategy.model, self.ewc_data, self.syn_data, math.inf,
                                       self.excluded_parameters, 1, eps=self.eps)

    return CopyingSynapticIntelligencePlugin(si_lambda=si_lambda, eps=eps)


def make_mas(ctx: StrategyContext, hp: MASHyperparameters):
    """`avalanche.training.MAS`."""
    from avalanche.training.supervised import MAS

    return MAS(**ctx.strategy_kwargs(), lambda_reg=hp.lambda_reg, alpha=hp.alpha)


def make_lwf(ctx: StrategyContext, hp: LwFHyperparameters):
    """`avalanche.training.LwF` (distillation from the model as it was after the previous
    phase), reading a multi-head model's old heads from the one training forward
    (`lwf_heads`: Avalanche forwards every minibatch twice there)."""
    from .lwf_heads import SingleForwardLwF

    return SingleForwardLwF(**ctx.strategy_kwargs(), alpha=hp.alpha, temperature=hp.temperature)


#: EWC's lambda over ten powers of ten, 1 to 1e9 (see the EWC entry below).
EWC_LAMBDA_GRID = tuple(10.0 ** k for k in range(10))

METHODS = [
    Method(
        name="ewc",
        factory=make_ewc,
        scenarios=ALL_SCENARIOS,
        hyperparameters=EWCHyperparameters,
        description="Elastic Weight Consolidation, offline: every past phase's Fisher penalty (merged into one quadratic by default).",
        stored_exemplars=no_exemplars,
        checkpointing=checkpointing.EWC,
        # van de Ven et al. 2022 (GMvandeVen/continual-learning) search lambda over powers of
        # ten, and their chosen values reach 1e9 (class-incremental Split MNIST); Avalanche's
        # Fisher (squared minibatch-mean gradients) is smaller than theirs, so the same
        # lambda is weaker here and the grid must reach at least as far
        search_space={"ewc_lambda": EWC_LAMBDA_GRID},
    ),
    Method(
        name="online-ewc",
        factory=make_online_ewc,
        scenarios=ALL_SCENARIOS,
        hyperparameters=OnlineEWCHyperparameters,
        description="Online EWC: one running Fisher penalty, decayed after each phase.",
        stored_exemplars=no_exemplars,
        checkpointing=checkpointing.EWC,
        # lambda as for EWC; gamma as in Schwarz et al. 2018 and van de Ven's grid
        search_space={"ewc_lambda": EWC_LAMBDA_GRID, "decay_factor": (0.5, 0.9, 1.0)},
    ),
    Method(
        name="si",
        factory=make_si,
        scenarios=ALL_SCENARIOS,
        hyperparameters=SIHyperparameters,
        description="Synaptic Intelligence: path-integral parameter importance.",
        stored_exemplars=no_exemplars,
        checkpointing=checkpointing.SI,
        # c over powers of ten (Zenke et al. 2017 report c=0.1 on permuted MNIST; van de Ven's
        # grid reaches 10^4 for the class- and domain-incremental scenarios)
        search_space={"si_lambda": (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)},
    ),
    Method(
        name="mas",
        factory=make_mas,
        scenarios=ALL_SCENARIOS,
        hyperparameters=MASHyperparameters,
        description="Memory Aware Synapses: output-sensitivity parameter importance.",
        stored_exemplars=no_exemplars,
        checkpointing=checkpointing.MAS,
        # Aljundi et al. 2018 and Avalanche's examples: lambda around 1
        search_space={"lambda_reg": (0.1, 1.0, 10.0, 100.0)},
    ),
    Method(
        name="lwf",
        factory=make_lwf,
        scenarios=ALL_SCENARIOS,
        hyperparameters=LwFHyperparameters,
        description="Learning without Forgetting: distillation from the previous phase's model.",
        stored_exemplars=no_exemplars,
        checkpointing=checkpointing.LWF,
        # Li & Hoiem 2017 use alpha=1, T=2; Mammoth and PyCIL search alpha around it
        search_space={"alpha": (0.5, 1.0, 2.0, 5.0, 10.0), "temperature": (1.0, 2.0)},
    ),
]
