"""clbench's baseline methods: thin, documented wrappers of Avalanche 0.6 strategies.

Avalanche is imported inside the factories, so listing methods stays fast.
"""

from __future__ import annotations

from clbench import Method, NoHyperparameters, StrategyContext, hookimpl


def make_naive(ctx: StrategyContext, hp: NoHyperparameters):
    """Plain fine-tuning: trains on whatever the environment hands it, nothing else."""
    from avalanche.training.supervised import Naive

    return Naive(**ctx.strategy_kwargs())


@hookimpl
def clbench_register_methods(register):
    register(Method(
        name="naive",
        factory=make_naive,
        description="Fine-tuning on each phase's data (the environment alone decides rehearsal).",
    ))
