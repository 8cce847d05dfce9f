"""Rehearsal baselines with a fixed sample buffer: experience replay, GDumb, DER++ and ER-ACE.

Each keeps at most `mem_size` training samples across all phases (`stored_exemplars` is
`mem_size`), on top of whatever the protocol's environment rehearses. Defaults use
Avalanche's `mem_size=200`, the same for all four, so their memory budgets are equal.
"""

from __future__ import annotations

from pydantic import Field

from clbench import Method, StrategyContext

from . import checkpointing
from ._base import ALL_SCENARIOS, Hyperparameters, buffer_size


class ReplayHyperparameters(Hyperparameters):
    """Experience replay with a fixed buffer, as Avalanche's ``Replay`` strategy.

    ``mem_size=200`` is the default of ``Replay`` / ``ReplayPlugin`` (strategy_wrappers.py).
    The buffer is experience-balanced (``ExperienceBalancedBuffer``, random selection);
    each minibatch joins ``train_mb_size`` new samples and ``train_mb_size`` buffer samples.
    """

    mem_size: int = Field(200, gt=0, description="buffer size (samples)")


class GDumbHyperparameters(Hyperparameters):
    """GDumb (Prabhu, Torr & Dokania, ECCV 2020), as Avalanche's ``GDumb`` strategy.

    Each phase re-initialises the model and trains it only on a class-balanced buffer.
    ``mem_size=200`` is Avalanche's ``GDumb`` default (strategy_wrappers.py), equal to the
    other buffer methods here; continual-learning-baselines' experiments/split_mnist/
    gdumb.py uses 4400 for Split MNIST.
    """

    mem_size: int = Field(200, gt=0, description="buffer size (samples)")


class DERHyperparameters(Hyperparameters):
    """Dark Experience Replay++ (Buzzega et al., NeurIPS 2020), Avalanche's ``DER``.

    Defaults are those of Avalanche's ``DER`` (der.py): ``mem_size=200`` (the paper's
    smallest buffer), ``alpha=0.1`` (logit-matching weight), ``beta=0.5`` (replay
    cross-entropy weight; ``beta=0`` gives plain DER), and a replay minibatch as large as
    the training minibatch. The buffer is class-balanced and stores logits with samples.
    """

    mem_size: int = Field(200, gt=0, description="buffer size (samples)")
    alpha: float = Field(0.1, ge=0, description="weight of the MSE between current and stored logits")
    beta: float = Field(0.5, ge=0, description="weight of the buffer cross-entropy (0 = DER)")
    batch_size_mem: int | None = Field(None, gt=0, description="replay minibatch (default: train batch)")


class ERACEHyperparameters(Hyperparameters):
    """ER with asymmetric cross-entropy (Caccia et al., ICLR 2022), Avalanche's ``ER_ACE``.

    Defaults ``mem_size=200`` and ``batch_size_mem=10`` are those of Avalanche's ``ER_ACE``
    (er_ace.py); 10 is also the paper's replay batch. The buffer is class-balanced and is
    updated with the new phase's data before training on it.
    """

    mem_size: int = Field(200, gt=0, description="buffer size (samples)")
    batch_size_mem: int = Field(10, gt=0, description="replay minibatch")


def make_replay(ctx: StrategyContext, hp: ReplayHyperparameters):
    """`avalanche.training.Replay`."""
    from avalanche.training.supervised import Replay

    return Replay(**ctx.strategy_kwargs(), mem_size=hp.mem_size)


def make_gdumb(ctx: StrategyContext, hp: GDumbHyperparameters):
    """`avalanche.training.GDumb` (replaces `strategy.model` by a fresh copy each phase)."""
    from avalanche.training.supervised import GDumb

    return GDumb(**ctx.strategy_kwargs(), mem_size=hp.mem_size)


def make_der(ctx: StrategyContext, hp: DERHyperparameters):
    """`avalanche.training.DER`."""
    from avalanche.training.supervised import DER

    return DER(**ctx.strategy_kwargs(), mem_size=hp.mem_size, alpha=hp.alpha, beta=hp.beta,
               batch_size_mem=hp.batch_size_mem)


def make_er_ace(ctx: StrategyContext, hp: ERACEHyperparameters):
    """`avalanche.training.ER_ACE`."""
    from avalanche.training.supervised import ER_ACE

    return ER_ACE(**ctx.strategy_kwargs(), mem_size=hp.mem_size, batch_size_mem=hp.batch_size_mem)


METHODS = [
    Method(
        name="replay",
        factory=make_replay,
        scenarios=ALL_SCENARIOS,
        hyperparameters=ReplayHyperparameters,
        description="Experience replay from a fixed, experience-balanced buffer.",
        stored_exemplars=buffer_size,
        checkpointing=checkpointing.REPLAY,
    ),
    Method(
        name="gdumb",
        factory=make_gdumb,
        scenarios=ALL_SCENARIOS,
        hyperparameters=GDumbHyperparameters,
        description="GDumb: retrain from scratch on a class-balanced buffer each phase.",
        stored_exemplars=buffer_size,
        checkpointing=checkpointing.GDUMB,
    ),
    Method(
        name="der",
        factory=make_der,
        # not task-incremental: Avalanche 0.6's DER stores its logits with model(x), without
        # the task labels a multi-head network needs (der.compute_dataset_logits)
        scenarios=("domain", "class"),
        hyperparameters=DERHyperparameters,
        description="Dark Experience Replay++: replay with stored logits (beta=0 gives DER).",
        stored_exemplars=buffer_size,
        checkpointing=checkpointing.DER,
        # Buzzega et al. 2020 (Mammoth's best_args): alpha and beta around 0.1-1
        search_space={"alpha": (0.1, 0.3, 0.5, 1.0), "beta": (0.5, 1.0)},
    ),
    Method(
        name="er-ace",
        factory=make_er_ace,
        scenarios=ALL_SCENARIOS,
        hyperparameters=ERACEHyperparameters,
        description="Experience replay with asymmetric cross-entropy.",
        stored_exemplars=buffer_size,
        checkpointing=checkpointing.ER_ACE,
    ),
]
