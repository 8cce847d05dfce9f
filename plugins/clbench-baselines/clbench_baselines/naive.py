"""Fine-tuning: the lower baseline."""

from __future__ import annotations

from clbench import STATELESS, Method, NoHyperparameters, StrategyContext

from ._base import ALL_SCENARIOS, no_exemplars


def make_naive(ctx: StrategyContext, hp: NoHyperparameters):
    """Plain fine-tuning (`avalanche.training.Naive`): trains on whatever the environment hands it."""
    from avalanche.training.supervised import Naive

    return Naive(**ctx.strategy_kwargs())


METHODS = [
    Method(
        name="naive",
        factory=make_naive,
        scenarios=ALL_SCENARIOS,
        description="Fine-tuning on each phase's data (the environment alone decides rehearsal).",
        stored_exemplars=no_exemplars,
        checkpointing=STATELESS,
    ),
]
