"""`training.iterations`: a training budget counted in optimizer steps per phase.

van de Ven's protocols train every task for a number of iterations of fresh minibatches
(2,000 or 5,000 of 128), not for epochs over a fixed pool. Under the field every phase
takes exactly that many steps, whatever its size; the phase's data is passed over,
reshuffled each pass, and the last pass is cut short. Unset, every protocol and record
keeps its hash.
"""

from __future__ import annotations

import json

import pytest

from clbench import Method, hookimpl
from clbench import plugins as plugins_module
from clbench.errors import BudgetExceeded
from clbench.presets import PROTOCOLS, get_protocol
from clbench.protocol import apply_overrides
from clbench.records import read_record
from clbench.runner import RunRequest, run
from clbench.testing import check_method

SMALL = ["benchmark.train_samples_per_task=300", "benchmark.test_samples_per_task=200",
         "evaluation.curve_test_samples=100"]
#: 300 samples in minibatches of 32: 10 steps per pass, the last one of 12 samples.
SEQUENTIAL = apply_overrides(get_protocol("smoke"), [*SMALL, "environment.kind=sequential"])
POWER_LAW = apply_overrides(get_protocol("smoke"), SMALL)  # phases of different sizes


def _run(protocol, method="naive", **hp):
    from clbench.datasets import resolve_data_root

    registered = plugins_module.get_registry().get(method)
    return run(RunRequest(protocol, registered, registered.method.parse_hyperparameters(hp), 0,
                          resolve_data_root()))


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_unset_keeps_every_hash_and_setting_it_changes_it(name):
    protocol = get_protocol(name)
    assert protocol.training.iterations is None
    assert apply_overrides(protocol, ["training.iterations=100", "training.epochs=1"]).hash != protocol.hash


def test_whole_passes_give_the_epochs_run_bit_for_bit(data_root):
    by_epochs = _run(apply_overrides(SEQUENTIAL, ["training.epochs=2"]))
    by_steps = _run(apply_overrides(SEQUENTIAL, ["training.epochs=1", "training.iterations=20"]))
    assert by_steps.accuracy_matrix == by_epochs.accuracy_matrix
    assert by_steps.learning_curves == by_epochs.learning_curves
    assert [p.steps for p in by_steps.audit.phases] == [20, 20, 20]
    assert [p.step_limit for p in by_steps.audit.phases] == [20, 20, 20]


def test_every_phase_takes_exactly_the_budget_whatever_its_size(data_root):
    protocol = apply_overrides(POWER_LAW, ["training.epochs=1", "training.iterations=13"])
    record = _run(protocol)
    phases = record.audit.phases
    assert len({p.phase_samples for p in phases}) > 1  # rehearsal makes later phases larger
    assert [p.steps for p in phases] == [13, 13, 13]
    assert [p.step_limit for p in phases] == [13, 13, 13]
    # phase 0: one pass of 300 samples (10 steps), then 3 full minibatches of a new pass
    assert record.samples_trained[0] == 300 + 3 * 32
    # the learning curve is spread over the 13 steps, as over an epoch budget's steps
    assert len(record.learning_curves[0].samples) == protocol.evaluation.curve_points + 1


def test_a_budget_that_ends_in_the_last_possible_pass_leaves_the_next_phase_its_steps(data_root):
    # 20 samples: one minibatch per pass, so the 3rd step ends the 3rd (last allowed) pass and
    # the stop flag is still set when the phase ends (Avalanche's train() clears it)
    protocol = apply_overrides(SEQUENTIAL, ["benchmark.train_samples_per_task=20", "training.epochs=1",
                                            "training.iterations=3"])
    assert [p.steps for p in _run(protocol).audit.phases] == [3, 3, 3]


@pytest.mark.parametrize("method", ["replay", "si", "der", "er-ace"])
def test_methods_with_their_own_loader_or_state_keep_the_budget(data_root, method):
    record = _run(apply_overrides(SEQUENTIAL, ["training.epochs=1", "training.iterations=7"]), method)
    assert [p.steps for p in record.audit.phases] == [7, 7, 7]
    assert all(p.verdict == "pass" for p in record.audit.phases)


# --- adversarial: a method that tries to train past the budget ------------------------------

def _naive(ctx, plugins=(), epochs_factor=1):
    from avalanche.training.supervised import Naive

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].extend(plugins)
    kwargs["train_epochs"] = epochs_factor * ctx.train_epochs
    return Naive(**kwargs)


def _ignore_the_stop():
    """A plugin that clears Avalanche's stop flag after the harness sets it."""
    from avalanche.core import SupervisedPlugin

    class IgnoreStop(SupervisedPlugin):
        def after_training_iteration(self, strategy, *args, **kwargs):
            strategy._stop_training = False

    return IgnoreStop()


class Overtrainers:
    @hookimpl
    def clbench_register_methods(register):
        register(Method(name="ignores-the-stop", factory=lambda ctx, hp: _naive(ctx, [_ignore_the_stop()])))
        register(Method(name="triple-epochs", factory=lambda ctx, hp: _naive(ctx, epochs_factor=3)))


@pytest.fixture
def overtrainers(monkeypatch):
    registry = plugins_module.load_registry({"overtrainers": Overtrainers})
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    return registry


def test_a_method_that_ignores_the_stop_fails_the_audit(data_root, overtrainers):
    protocol = apply_overrides(SEQUENTIAL, ["training.epochs=1", "training.iterations=13"])
    with pytest.raises(BudgetExceeded, match=r"phase 0: optimizer step 14 exceeds the budget of 13 steps "
                                             r"\(training.iterations 13 per phase\)"):
        _run(protocol, "ignores-the-stop")


def test_asking_for_more_epochs_still_ends_each_phase_at_the_budget(data_root, overtrainers):
    record = _run(apply_overrides(SEQUENTIAL, ["training.epochs=1", "training.iterations=13"]), "triple-epochs")
    assert [p.steps for p in record.audit.phases] == [13, 13, 13]


# --- through the command line, records and check-plugin -------------------------------------

def _set(*overrides: str) -> list[str]:
    return sum((["--set", o] for o in overrides), [])


def test_an_iteration_record_reads_back_and_verifies(cli, tmp_path, data_root):
    out = tmp_path / "out"
    code, _, err = cli("evaluate", "naive", "--protocol", "smoke", "--seeds", "0", "--out", out, "-q",
                       "--data-root", data_root, *_set(*SMALL, "training.epochs=1", "training.iterations=13"))
    assert code == 0, err
    [path] = out.glob("*.json")
    record = read_record(path)  # re-checks every audited count against the protocol's limits
    assert record.protocol["training"]["iterations"] == 13
    assert [p.step_limit for p in record.audit.phases] == [13, 13, 13]
    code, stdout, err = cli("verify", path, "--data-root", data_root)
    assert code == 0, stdout + err


def test_check_plugin_passes_an_honest_method_under_an_iteration_budget(data_root):
    report = check_method("naive", data_root=data_root, overrides=[*SMALL, "training.epochs=1", "training.iterations=7"])
    failed = [(c.name, c.detail) for c in report.checks if not c.passed]
    assert failed == []
    details = {c.name: c.detail for c in report.checks}
    assert "steps/limit per phase 7/7, 7/7, 7/7" in details[
        "keeps to the training budget (optimizer steps and forward samples per phase)"]


@pytest.mark.parametrize("overrides, message", [
    (["training.iterations=5", "training.epochs=3"], "set training.epochs=1 as well"),
    (["training.epochs=1", "training.iterations=0"], "training.iterations"),
    (["training.epochs=1", "training.iterations=1000001"], "training.iterations"),
])
def test_bad_iteration_budgets_are_one_line_errors(cli, tmp_path, overrides, message):
    code, _, err = cli("evaluate", "naive", "--protocol", "smoke", "--out", tmp_path / "out", *_set(*overrides))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_protocols_show_prints_the_budget(cli):
    code, stdout, _ = cli("protocols", "show", "smoke", "--json", *_set("training.epochs=1", "training.iterations=40"))
    assert code == 0 and json.loads(stdout)["training"]["iterations"] == 40
