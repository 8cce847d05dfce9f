"""`clbench check-plugin` and clbench.testing: good methods pass, misbehaving ones fail."""

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field

from clbench import Method, hookimpl
from clbench import plugins as plugins_module
from clbench.testing import check_method


class Strength(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    strength: float = Field(default=1.0, ge=0)


class LooseHyper(BaseModel):  # forgets extra="forbid"
    strength: float = 1.0


def _naive(ctx, hp):
    from avalanche.training.supervised import Naive

    return Naive(**ctx.strategy_kwargs())


def _double_epochs(ctx, hp):
    from avalanche.training.supervised import Naive

    kwargs = ctx.strategy_kwargs()
    kwargs["train_epochs"] = ctx.train_epochs * 2
    return Naive(**kwargs)


def _smuggler(ctx, hp):
    """Adds noise images to every minibatch: data the harness never handed over."""
    from avalanche.core import SupervisedPlugin
    from avalanche.training.supervised import Naive

    class Smuggle(SupervisedPlugin):
        def before_forward(self, strategy, **kwargs):
            extra = torch.randn(4, *strategy.mb_x.shape[1:])
            strategy.mbatch[0] = torch.cat([strategy.mb_x, extra])
            strategy.mbatch[1] = torch.cat([strategy.mb_y, strategy.mb_y[:4]])

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(Smuggle())
    return Naive(**kwargs)


def _drops_plugins(ctx, hp):
    from avalanche.training.supervised import Naive

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"] = []
    return Naive(**kwargs)


class TestPlugin:
    @hookimpl
    def clbench_register_methods(register):
        register(Method(name="t-good", factory=_naive, hyperparameters=Strength))
        register(Method(name="t-loose", factory=_naive, hyperparameters=LooseHyper))
        register(Method(name="t-epochs", factory=_double_epochs))
        register(Method(name="t-smuggler", factory=_smuggler))
        register(Method(name="t-drops", factory=_drops_plugins))


@pytest.fixture
def test_registry(monkeypatch):
    monkeypatch.setattr(plugins_module, "_REGISTRY", plugins_module.load_registry({"test": TestPlugin}))


QUICK = ["training.epochs=1", "benchmark.train_samples_per_task=1000"]


def _failed(report):
    return {c.name for c in report.checks if not c.passed}


def test_a_well_behaved_method_passes(test_registry, data_root):
    report = check_method("t-good", data_root=data_root, overrides=QUICK)
    assert report.passed, report.summary()
    assert "all checks passed" in report.summary()


def test_hyperparameter_model_without_forbid_fails(test_registry, data_root):
    report = check_method("t-loose", data_root=data_root, overrides=QUICK)
    assert _failed(report) == {"unknown hyperparameters are rejected"}


def test_training_longer_than_the_budget_fails(test_registry, data_root):
    report = check_method("t-epochs", data_root=data_root, overrides=QUICK)
    assert "uses the protocol's epochs and batch size" in _failed(report)
    # the harness's audit stops the run at the first step beyond the budget
    assert "keeps to the training budget (optimizer steps and forward samples per phase)" in _failed(report)
    assert report.record is None


def test_training_on_foreign_data_fails(test_registry, data_root):
    report = check_method("t-smuggler", data_root=data_root, overrides=QUICK)
    assert _failed(report) == {"trains only on the experiences it was given"}
    # extra samples per minibatch: the curve keeps its points, samples count what was processed
    record = report.record
    for phase, curve in enumerate(record.learning_curves):
        assert len(curve.samples) == record.protocol["evaluation"]["curve_points"] + 1
        assert record.samples_trained[phase] > sum(record.environment_matrix[phase])


def test_dropping_the_harness_plugins_fails(test_registry, data_root):
    report = check_method("t-drops", data_root=data_root, overrides=QUICK)
    assert not report.passed
    assert any("harness plugins" in c.detail for c in report.checks)


def test_cli_exit_codes(cli, test_registry, data_root):
    code, out, _ = cli("check-plugin", "t-good", "--data-root", data_root, *sum((["--set", o] for o in QUICK), []))
    assert code == 0 and "PASS  trains only on the experiences it was given" in out
    code, out, _ = cli("check-plugin", "t-smuggler", "--data-root", data_root, *sum((["--set", o] for o in QUICK), []))
    assert code == 1 and "FAIL  trains only on the experiences it was given" in out
    code, _, err = cli("check-plugin", "t-gooood", "--data-root", data_root)
    assert code == 2 and "did you mean 't-good'" in err
