"""Merged offline EWC: same gradients as Avalanche's per-task sum, at constant cost."""

from types import SimpleNamespace

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EWCPlugin

from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.runner import RunRequest, run
from clbench_baselines.ewc_merged import MergedEWCPlugin

PROTOCOL = apply_overrides(get_protocol("smoke"), [
    "environment.kind=sequential", "benchmark.n_tasks=4", "training.epochs=1",
    "benchmark.train_samples_per_task=1000",
])


class KeepStrategy(SupervisedPlugin):
    def after_training_exp(self, strategy, **kwargs):
        self.strategy = strategy


def _run(penalty, data_root, observers=()):
    ewc = get_registry().get("ewc")
    hp = ewc.method.parse_hyperparameters({"penalty": penalty})
    return run(RunRequest(PROTOCOL, ewc, hp, 0, data_root, observers=list(observers)))


def _penalty_gradients(plugin, model, phases):
    model.zero_grad()
    strategy = SimpleNamespace(model=model, loss=torch.zeros(()), device="cpu",
                               clock=SimpleNamespace(train_exp_counter=phases))
    plugin.before_backward(strategy)
    strategy.loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_merged_penalty_has_the_per_task_gradients(data_root):
    keeper = KeepStrategy()
    _run("per-task", data_root, [keeper])
    strategy = keeper.strategy
    per_task = next(p for p in strategy.plugins if isinstance(p, EWCPlugin))
    phases = PROTOCOL.benchmark.n_tasks
    merged = MergedEWCPlugin(per_task.ewc_lambda)
    for t in range(phases):
        merged.add_phase({n: d.data for n, d in per_task.importances[t].items()},
                         {n: d.data for n, d in per_task.saved_params[t].items()})
    model = strategy.model
    with torch.no_grad():  # a point away from every anchor, so all terms pull
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    expected = _penalty_gradients(per_task, model, phases)
    actual = _penalty_gradients(merged, model, phases)
    for name in expected:
        scale = expected[name].abs().max().item()
        assert scale > 0
        assert torch.allclose(actual[name], expected[name], rtol=1e-4, atol=1e-6 * scale), name


def test_merged_and_per_task_runs_agree(data_root):
    per_task, merged = _run("per-task", data_root), _run("merged", data_root)
    for row_a, row_b in zip(per_task.accuracy_matrix, merged.accuracy_matrix):
        for a, b in zip(row_a, row_b):
            assert abs(a - b) <= 0.02  # same gradients; only float rounding differs
    assert merged.method.hyperparameters["penalty"] == "merged"
