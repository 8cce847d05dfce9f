"""Gradient-projection baselines with an episodic memory per phase: GEM and A-GEM.

Both keep `patterns_per_exp` training samples of every phase (the last included), so
`stored_exemplars` is `patterns_per_exp * n_tasks`. GEM's cost grows with the number of
past phases (a forward/backward pass over each past phase's memory and a quadratic
program per training step); A-GEM's does not.
"""

from __future__ import annotations

from pydantic import Field

from clbench import Method, StrategyContext

from . import checkpointing
from ._base import ALL_SCENARIOS, Hyperparameters, per_experience


class GEMHyperparameters(Hyperparameters):
    """Gradient Episodic Memory (Lopez-Paz & Ranzato, NeurIPS 2017), Avalanche's ``GEM``.

    Defaults ``patterns_per_exp=256`` (the paper's 256 memories per task on MNIST) and
    ``memory_strength=0.5`` (the paper's gamma) are also the defaults of Avalanche's
    examples/gem_agem_mnist.py. Needs the ``quadprog`` solver (through qpsolvers).
    """

    patterns_per_exp: int = Field(256, gt=0, description="memory samples kept per phase")
    memory_strength: float = Field(0.5, ge=0, description="gamma: margin added to the projection")


class AGEMHyperparameters(Hyperparameters):
    """Averaged GEM (Chaudhry et al., ICLR 2019), Avalanche's ``AGEM``.

    Defaults ``patterns_per_exp=256`` and ``sample_size=256`` (memory samples per reference
    gradient) are those of Avalanche's examples/gem_agem_mnist.py; the paper uses 250
    memories per task and a reference batch of 256 on MNIST.
    """

    patterns_per_exp: int = Field(256, gt=0, description="memory samples kept per phase")
    sample_size: int = Field(256, gt=0, description="memory samples per reference gradient")


def make_gem(ctx: StrategyContext, hp: GEMHyperparameters):
    """`avalanche.training.GEM`."""
    from avalanche.training.supervised import GEM

    return GEM(**ctx.strategy_kwargs(), patterns_per_exp=hp.patterns_per_exp,
               memory_strength=hp.memory_strength)


def make_agem(ctx: StrategyContext, hp: AGEMHyperparameters):
    """`avalanche.training.AGEM`."""
    from avalanche.training.supervised import AGEM

    return AGEM(**ctx.strategy_kwargs(), patterns_per_exp=hp.patterns_per_exp,
                sample_size=hp.sample_size)


METHODS = [
    Method(
        name="gem",
        factory=make_gem,
        scenarios=ALL_SCENARIOS,
        hyperparameters=GEMHyperparameters,
        description="Gradient Episodic Memory: project gradients so no past phase's memory loss rises.",
        stored_exemplars=per_experience,
        checkpointing=checkpointing.GEM,
        # Lopez-Paz & Ranzato 2017 search the margin gamma in {0, 0.5, 1}
        search_space={"memory_strength": (0.0, 0.5, 1.0)},
    ),
    Method(
        name="agem",
        factory=make_agem,
        scenarios=ALL_SCENARIOS,
        hyperparameters=AGEMHyperparameters,
        description="Averaged GEM: project against one reference gradient from the memory.",
        stored_exemplars=per_experience,
        checkpointing=checkpointing.AGEM,
    ),
]
