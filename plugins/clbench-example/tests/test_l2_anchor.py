"""The example plugin's own tests: what an outside author would write."""

import os
from pathlib import Path

import pytest
import torch

from clbench.plugins import get_registry
from clbench.testing import check_method
from clbench_example.anchor import L2AnchorPlugin

DATA_ROOT = os.environ.get("CLBENCH_DATA_ROOT", str(Path(__file__).parents[4] / "shared" / "data"))


def test_registered_from_its_own_distribution():
    registered = get_registry().get("l2-anchor")
    assert (registered.plugin, registered.version) == ("clbench-example", "0.1.0")


def test_penalty_pulls_towards_the_anchor():
    class FakeStrategy:  # just the two attributes the plugin touches
        model = torch.nn.Linear(2, 1)
        loss = torch.tensor(0.0)

    strategy = FakeStrategy()
    plugin = L2AnchorPlugin(strength=2.0)
    plugin.before_backward(strategy)
    assert strategy.loss.item() == 0.0  # no anchor before the first phase ends
    plugin.after_training_exp(strategy)
    with torch.no_grad():
        for p in strategy.model.parameters():
            p.add_(1.0)  # move every weight by one: penalty = 2 / 2 * (number of weights)
    plugin.before_backward(strategy)
    assert strategy.loss.item() == pytest.approx(3.0)


def test_passes_the_clbench_plugin_checks():
    report = check_method("l2-anchor", data_root=DATA_ROOT)
    assert report.passed, report.summary()


def _run(strength: float):
    from clbench.presets import get_protocol
    from clbench.protocol import apply_overrides
    from clbench.runner import RunRequest, run

    protocol = apply_overrides(get_protocol("smoke"), ["environment.kind=sequential", "training.epochs=1"])
    registered = get_registry().get("l2-anchor")
    hp = registered.method.parse_hyperparameters({"strength": strength})
    return run(RunRequest(protocol, registered, hp, seed=0, data_root=Path(DATA_ROOT)))


def test_anchoring_reduces_forgetting_in_a_sequential_environment():
    """The point of the method: a stronger pull forgets less on the same protocol and seed."""
    free, anchored = _run(0.0), _run(5.0)
    assert anchored.metrics.forgetting < free.metrics.forgetting
