"""The run audit (clbench.audit): rule-breaking methods end without a record, honest ones pass.

One adversarial method per row of issue 10's table, registered in-process, each run
through `clbench evaluate` (or `check-plugin`) on a small smoke protocol; every baseline
and the example plugin must pass every audit (tests/test_audit.py::test_every_baseline...).
"""

from __future__ import annotations

import json
from typing import Literal

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from clbench import Method, hookimpl
from clbench import plugins as plugins_module
from clbench.errors import BudgetExceeded, MemoryExceeded, UncountedUpdate
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.runner import RunRequest, run
from clbench.testing import check_method, resume_matches

SMALL = ["benchmark.train_samples_per_task=300", "benchmark.test_samples_per_task=200",
         "evaluation.curve_test_samples=100"]
SMOKE = apply_overrides(get_protocol("smoke"), SMALL)
QUICK_SMOKE = apply_overrides(SMOKE, ["training.epochs=1"])  # for the honest baselines
SPLIT = apply_overrides(get_protocol("smnist-5"), ["benchmark.train_samples_per_task=600",
                                                    "benchmark.test_samples_per_task=200",
                                                    "evaluation.curve_test_samples=100"])

#: A module global a method may try to hide samples in (the audit walks the method's module).
STASH: list = []


def _naive(ctx, plugins=()):
    from avalanche.training.supervised import Naive

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].extend(plugins)
    return Naive(**kwargs)


def _private_training(strategy, epochs: int, train_mode: bool) -> None:
    """Extra epochs with the method's own optimizer, outside Avalanche's loop."""
    from torch.utils.data import DataLoader

    model = strategy.model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train(train_mode)
    for _ in range(epochs):
        for x, y, *_ in DataLoader(strategy.experience.dataset, batch_size=32, shuffle=True):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    model.train()


def _plugin(**callbacks):
    from avalanche.core import SupervisedPlugin

    return type("Cheat", (SupervisedPlugin,), callbacks)()


def _cheat_plugins(cheat: str) -> list:
    if cheat == "private-optimizer":  # 4 extra epochs after each phase, in training mode
        return [_plugin(after_training_exp=lambda self, s, **k: _private_training(s, 4, True))]
    if cheat == "private-optimizer-eval":  # the same in eval mode: no forward is counted
        return [_plugin(after_training_exp=lambda self, s, **k: _private_training(s, 4, False))]
    if cheat == "pretrain":  # before the phase's first step
        return [_plugin(before_training_exp=lambda self, s, **k: _private_training(s, 1, False))]
    if cheat == "data-edit":  # p.data edited between steps
        def nudge(self, strategy, **kwargs):
            with torch.no_grad():
                next(strategy.model.parameters()).data += 1e-3
        return [_plugin(after_training_iteration=nudge)]
    if cheat == "hoard":  # keeps every training sample it saw, declares 0
        def keep(self, strategy, **kwargs):
            self.kept.append(strategy.mb_x.detach().clone())
        plugin = _plugin(after_training_iteration=keep)
        plugin.kept = []
        return [plugin]
    if cheat == "hoard-datasets":  # keeps each phase's dataset
        def keep_dataset(self, strategy, **kwargs):
            self.datasets.append(strategy.experience.dataset)
        plugin = _plugin(after_training_exp=keep_dataset)
        plugin.datasets = []
        return [plugin]
    if cheat == "hoard-global":  # hides the samples in a module global
        return [_plugin(after_training_iteration=lambda self, s, **k: STASH.append(s.mb_x.clone()))]
    return []


class CheatHP(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    cheat: Literal["none", "epochs", "private-optimizer", "private-optimizer-eval", "pretrain",
                   "data-edit", "hoard", "hoard-datasets", "hoard-global"] = "none"


def _sometimes(ctx, hp: CheatHP):
    """Honest by default; breaks one rule under `--hp cheat=...`."""
    if hp.cheat == "epochs":
        from avalanche.training.supervised import Naive

        kwargs = ctx.strategy_kwargs()
        kwargs["train_epochs"] = 3 * ctx.train_epochs
        return Naive(**kwargs)
    return _naive(ctx, _cheat_plugins(hp.cheat))


def _make(cheat):
    def factory(ctx, hp):
        return _sometimes(ctx, CheatHP(cheat=cheat))
    return factory


class Adversaries:
    @hookimpl
    def clbench_register_methods(register):
        register(Method(name="triple-epochs", factory=_make("epochs")))
        register(Method(name="private-optimizer", factory=_make("private-optimizer")))
        register(Method(name="hoarder", factory=_make("hoard")))
        register(Method(name="sometimes", factory=_sometimes, hyperparameters=CheatHP))


@pytest.fixture
def adversaries(monkeypatch):
    registry = plugins_module.load_registry({"adversaries": Adversaries})
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    STASH.clear()
    return registry


def _run(registry, method: str, protocol=SMOKE, data_root=None, **hp):
    registered = registry.get(method)
    return run(RunRequest(protocol, registered, registered.method.parse_hyperparameters(hp), 0, data_root))


def _evaluate(cli, tmp_path, data_root, method, *extra):
    out = tmp_path / "out"
    code, _, err = cli("evaluate", method, "--protocol", "smoke", "--seeds", "0", "--out", out,
                       "--data-root", data_root, "-q", *sum((["--set", o] for o in SMALL), []), *extra)
    failures = [json.loads(p.read_text()) for p in out.glob("*.failure")]
    return code, err, list(out.glob("*.json")), failures


# --- one test per row of the table ---------------------------------------------------

def test_three_times_the_epochs_ends_without_a_record(cli, tmp_path, data_root, adversaries):
    code, err, records, [failure] = _evaluate(cli, tmp_path, data_root, "triple-epochs")
    assert code == 1 and records == []
    assert failure["reason"].startswith("BudgetExceeded: phase 0: optimizer step 21 exceeds the budget of 20 steps")
    assert "epochs 2 x ceil((300 phase samples + 0 declared memory) / batch 32)" in failure["reason"]
    assert "BudgetExceeded" in err and "phase 0" in err


def test_extra_epochs_with_a_private_optimizer_end_without_a_record(cli, tmp_path, data_root, adversaries):
    code, _, records, [failure] = _evaluate(cli, tmp_path, data_root, "private-optimizer")
    assert code == 1 and records == []
    # its training-mode forwards overrun the forward budget before the phase ends
    assert failure["reason"].startswith("BudgetExceeded: phase 0: ")
    assert "training-mode forward samples exceed the budget of 940" in failure["reason"]


@pytest.mark.parametrize("cheat", ["private-optimizer-eval", "pretrain", "data-edit"])
def test_updates_outside_the_counted_steps_are_detected(data_root, adversaries, cheat):
    with pytest.raises(UncountedUpdate, match=r"^phase 0: the model's parameters changed outside "
                                              r"the harness's optimizer steps"):
        _run(adversaries, "sometimes", data_root=data_root, cheat=cheat)


def test_keeping_every_sample_while_declaring_none_ends_without_a_record(cli, tmp_path, data_root,
                                                                          adversaries):
    code, _, records, [failure] = _evaluate(cli, tmp_path, data_root, "hoarder")
    assert code == 1 and records == []
    reason = failure["reason"]
    assert reason.startswith("MemoryExceeded: phase 0: the strategy retains 300 training samples, "
                             "but the method declares stored_exemplars=0 (limit 1 with tolerance 1)")
    assert reason.endswith("strategy.plugins[3].kept holds 300")  # the attribute path that holds them


@pytest.mark.parametrize("cheat, where", [("hoard-datasets", "strategy.plugins[3].datasets holds 300"),
                                          ("hoard-global", "test_audit.STASH holds 300")])
def test_hidden_hoards_are_found_with_their_path(data_root, adversaries, cheat, where):
    with pytest.raises(MemoryExceeded, match="phase 0: the strategy retains 300 training samples") as info:
        _run(adversaries, "sometimes", data_root=data_root, cheat=cheat)
    assert where in str(info.value)


def test_rule_breaking_only_under_a_non_default_hp_is_caught_by_check_plugin(cli, data_root, adversaries):
    args = ["--data-root", data_root, *sum((["--set", o] for o in SMALL), [])]
    code, out, _ = cli("check-plugin", "sometimes", *args)
    assert code == 0, out  # the defaults are honest
    for cheat, rule in (("epochs", "FAIL  keeps to the training budget"),
                        ("hoard", "FAIL  retains no more training samples than it declares"),
                        ("data-edit", "FAIL  updates the model only through the harness's optimizer steps")):
        code, out, _ = cli("check-plugin", "sometimes", "--hp", f"cheat={cheat}", *args)
        assert code == 1 and rule in out and "phase 0" in out, out
    code, _, err = cli("check-plugin", "sometimes", "--hp", "cheat=nonsense", *args)
    assert code == 2 and "cheat" in err


# --- honest methods ----------------------------------------------------------------------------

BASELINES = ["naive", "ewc", "online-ewc", "si", "mas", "lwf", "replay", "gem", "agem", "gdumb",
             "der", "er-ace", "l2-anchor"]


def _passes_every_audit(record) -> None:
    audit = record.audit
    assert audit is not None and len(audit.phases) == record.protocol["benchmark"]["n_tasks"]
    for phase in audit.phases:
        assert phase.verdict == "pass"
        assert 0 < phase.steps <= phase.step_limit
        assert 0 < phase.forward_samples <= phase.forward_limit
        assert phase.stored_samples <= record.method.stored_exemplars
        assert phase.update_checks >= phase.steps
    assert audit.stored_samples == max(p.stored_samples for p in audit.phases)


@pytest.mark.parametrize("method", BASELINES)
def test_every_baseline_passes_every_audit_on_smoke(method, data_root):
    registered = plugins_module.get_registry().get(method)
    record = run(RunRequest(QUICK_SMOKE, registered, registered.method.hyperparameters(), 0, data_root))
    _passes_every_audit(record)
    if record.method.stored_exemplars:  # buffers are measured, not just declared
        assert record.audit.stored_samples > 0


@pytest.mark.parametrize("method", ["icarl", "gdumb", "replay"])
def test_class_incremental_memory_methods_pass_every_audit_on_split_mnist(method, data_root):
    registered = plugins_module.get_registry().get(method)
    record = run(RunRequest(SPLIT, registered, registered.method.hyperparameters(), 0, data_root))
    _passes_every_audit(record)
    assert record.audit.stored_samples > 0


def test_a_resumed_run_gives_the_identical_audit_block(data_root):
    registered = plugins_module.get_registry().get("replay")
    uninterrupted = run(RunRequest(SMOKE, registered, registered.method.hyperparameters(), 0, data_root))
    request = RunRequest(SMOKE, registered, registered.method.hyperparameters(), 0, data_root)
    matches, detail = resume_matches(request, 2, uninterrupted)
    assert matches, detail


def test_check_plugin_reports_the_measured_counts(data_root):
    report = check_method("replay", data_root=data_root, overrides=SMALL + ["training.epochs=1"])
    details = {c.name: c.detail for c in report.checks}
    memory = details["retains no more training samples than it declares (stored_exemplars)"]
    assert memory.startswith("at most 200 training samples retained, 200 declared")
    assert "steps/limit per phase 10/16" in details[
        "keeps to the training budget (optimizer steps and forward samples per phase)"]


def test_budget_errors_are_run_failures():
    from clbench.errors import AuditFailure, RunFailure

    assert issubclass(BudgetExceeded, AuditFailure) and issubclass(AuditFailure, RunFailure)


def test_check_plugin_record_checks_the_configuration_a_record_reports(cli, tmp_path, data_root, adversaries):
    """A table reports a record made with `--hp cheat=hoard`: the record's configuration is checked."""
    from clbench.records import RunRecord, run_id, sealed

    small = sum((["--set", o] for o in SMALL), [])
    code, _, records, _ = _evaluate(cli, tmp_path, data_root, "sometimes")
    assert code == 0
    [honest] = records
    code, out, _ = cli("check-plugin", "--record", honest, "--data-root", data_root)
    assert code == 0 and "sometimes: all checks passed" in out
    # the same entry, claiming the hoarding configuration (resealed, as anyone can)
    data = json.loads(honest.read_text())
    data["method"]["hyperparameters"] = {"cheat": "hoard"}
    data["run_id"] = run_id(data["protocol"]["hash"], "sometimes", data["method"]["hyperparameters"], 0)
    claimed = tmp_path / "claimed.json"
    claimed.write_text(sealed(RunRecord.model_validate(data)).model_dump_json())
    code, out, err = cli("check-plugin", "--record", claimed, "--data-root", data_root)
    assert code == 1 and "FAIL  retains no more training samples than it declares" in out, err
    code, _, err = cli("check-plugin", "--record", claimed, "--hp", "cheat=none", *small)
    assert code == 2 and "drop METHOD and --hp" in err
