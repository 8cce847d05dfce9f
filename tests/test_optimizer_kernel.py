"""`training.optimizer_kernel`: the optimizer's torch implementation is part of the protocol
(issue 14). The default keeps every earlier hash and record; foreach and fused are the
same update in another floating-point order, so they are hashed, really used by the run,
reproducible, and close to the default's numbers."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin

from clbench.errors import ClbenchError
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.runner import RunRequest, make_optimizer, run

TINY = ["benchmark.n_tasks=2", "benchmark.train_samples_per_task=600", "benchmark.test_samples_per_task=300",
        "evaluation.curve_points=1", "evaluation.curve_test_samples=100", "training.epochs=2"]


def test_the_default_keeps_every_hash_and_the_kernels_change_it():
    pmnist = get_protocol("pmnist-10")
    assert apply_overrides(pmnist, ["training.optimizer_kernel=default"]).hash == pmnist.hash
    hashes = {apply_overrides(pmnist, [f"training.optimizer_kernel={k}"]).hash for k in ("foreach", "fused")}
    assert len(hashes) == 2 and pmnist.hash not in hashes
    # the hash the committed leaderboards were made with (leaderboards/paper-environments)
    sequential = apply_overrides(pmnist, ["environment.kind=sequential", "training.optimizer_kernel=default"])
    assert sequential.hash == "bac2e9b3a1a89fed1d61a8a5ffc0774c0b67315a3bf5c92d0196c9a2ace4a562"


def test_an_unknown_kernel_is_a_one_line_error():
    with pytest.raises(ClbenchError, match="optimizer_kernel"):
        apply_overrides(get_protocol("smoke"), ["training.optimizer_kernel=turbo"])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("kernel, flag", [("default", None), ("foreach", "foreach"), ("fused", "fused")])
def test_make_optimizer_selects_the_kernel(optimizer, kernel, flag):
    training = apply_overrides(get_protocol("smoke"), [f"training.optimizer={optimizer}",
                                                        f"training.optimizer_kernel={kernel}"]).training
    opt = make_optimizer(training, torch.nn.Linear(4, 2))
    assert type(opt).__name__ == {"adam": "Adam", "sgd": "SGD"}[optimizer]
    for name in ("foreach", "fused"):
        assert bool(opt.defaults.get(name)) == (name == flag)


class _Kernel(SupervisedPlugin):
    """Notes the optimizer the strategy really steps, and its losses."""

    def __init__(self):
        super().__init__()
        self.flags, self.losses = set(), []

    def after_training_iteration(self, strategy, *args, **kwargs):
        defaults = strategy.optimizer.defaults
        self.flags.add((bool(defaults.get("foreach")), bool(defaults.get("fused"))))
        self.losses.append(strategy.loss.item())


def _run(data_root, kernel: str, method: str = "naive"):
    protocol = apply_overrides(get_protocol("smoke"), [*TINY, f"training.optimizer_kernel={kernel}"])
    registered = get_registry().get(method)
    observer = _Kernel()
    record = run(RunRequest(protocol, registered, registered.method.parse_hyperparameters({}), 0, data_root,
                            observers=[observer]))
    return record, observer


def test_a_fused_run_uses_it_is_reproducible_and_close_to_the_default(data_root):
    default, default_steps = _run(data_root, "default")
    fused, fused_steps = _run(data_root, "fused")
    again, _ = _run(data_root, "fused")
    assert default_steps.flags == {(False, False)} and fused_steps.flags == {(False, True)}
    assert fused.protocol["training"]["optimizer_kernel"] == "fused"
    assert fused.protocol_hash != default.protocol_hash and fused.run_id != default.run_id
    assert again.accuracy_matrix == fused.accuracy_matrix  # same kernel, same seed: same numbers
    assert len(fused_steps.losses) == len(default_steps.losses)
    # the same update in another order: the first step is identical, the run stays close
    assert fused_steps.losses[0] == pytest.approx(default_steps.losses[0], rel=1e-6)
    assert abs(fused.metrics.acc - default.metrics.acc) < 0.05
