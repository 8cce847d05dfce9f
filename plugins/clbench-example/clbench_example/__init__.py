"""clbench-example: L2 anchoring to the previous phase's weights, as a clbench plugin.

The entry point `example = "clbench_example"` (group `clbench`) makes clbench load this
module; the `hookimpl` below registers the method. Avalanche is imported only inside the
factory so that `clbench methods` stays fast.
"""

from __future__ import annotations

from pydantic import Field

from clbench import Checkpointing, Hyperparameters, Method, StrategyContext, hookimpl


class AnchorHyperparameters(Hyperparameters):
    """`--hp strength=...`; clbench's base makes it frozen, refuses unknown keys, inf, nan
    and `true` for a number."""

    strength: float = Field(
        default=1.0, ge=0.0,
        description="Weight of the L2 pull towards the previous phase's parameters.",
    )


def make_l2_anchor(ctx: StrategyContext, hp: AnchorHyperparameters):
    """Naive fine-tuning plus the anchoring plugin; everything else comes from the harness."""
    from avalanche.training.supervised import Naive

    from .anchor import L2AnchorPlugin

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(L2AnchorPlugin(hp.strength))
    return Naive(**kwargs)


def _anchor_plugin(strategy):
    from .anchor import L2AnchorPlugin

    return next(p for p in strategy.plugins if isinstance(p, L2AnchorPlugin))


def save_state(strategy) -> dict:
    """What the strategy holds besides model and optimizer: the anchor (None in phase 0)."""
    return {"anchor": _anchor_plugin(strategy).anchor}


def load_state(strategy, state: dict) -> None:
    _anchor_plugin(strategy).anchor = state["anchor"]


@hookimpl
def clbench_register_methods(register):
    register(Method(
        name="l2-anchor",
        factory=make_l2_anchor,
        hyperparameters=AnchorHyperparameters,
        scenarios=("domain", "class"),
        description="Fine-tuning with an L2 pull towards the previous phase's weights.",
        stored_exemplars=lambda hp, n_tasks, n_classes: 0,  # keeps weights, never samples
        # a killed run continues from its last finished phase (see docs/running-at-scale.md)
        checkpointing=Checkpointing(save=save_state, load=load_state),
    ))
