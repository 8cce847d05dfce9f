"""Protocols: presets, validation, content hashing and --set overrides."""

import json
import subprocess
import sys

import pytest

from clbench.errors import ClbenchError
from clbench.presets import PROTOCOLS, get_protocol
from clbench.protocol import Protocol, apply_overrides, setup_changes


def test_presets_exist_and_validate():
    assert {"smoke", "pmnist-10", "pmnist-paper", "smnist-5", "scifar100-10", "stinyimagenet-10"} <= set(PROTOCOLS)
    for p in PROTOCOLS.values():
        assert Protocol.model_validate(p.model_dump()) == p


def test_smoke_is_small_permuted_mnist_power_law():
    p = get_protocol("smoke")
    assert p.benchmark.name == "permuted-mnist" and p.benchmark.n_tasks == 3
    assert p.benchmark.train_samples_per_task <= 5000 and p.benchmark.test_samples_per_task <= 1000
    assert p.environment.kind == "power-law"


def test_paper_preset_matches_the_known_setup():
    p = get_protocol("pmnist-paper")
    assert p.model.hidden == (1000, 1000, 1000) and p.model.batch_norm and p.model.dropout == 0.5
    assert p.training.optimizer == "adam" and p.training.lr == 1e-3 and p.training.batch_size >= 1024
    assert p.env_matrix()[0][0] == 57927


def test_protocols_are_frozen():
    with pytest.raises(Exception):
        get_protocol("smoke").benchmark.n_tasks = 5


def test_hash_is_content_only_and_stable_across_processes():
    p = get_protocol("smoke")
    renamed = p.model_copy(update={"name": "other", "description": "x", "seeds": (7,)})
    assert renamed.hash == p.hash
    code = "from clbench.presets import get_protocol; print(get_protocol('smoke').hash)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == p.hash
    assert len(p.hash) == 64


def test_override_changes_hash_and_same_value_keeps_it():
    p = get_protocol("smoke")
    assert apply_overrides(p, ["training.lr=0.001"]).hash == p.hash
    changed = apply_overrides(p, ["training.epochs=3"])
    assert changed.training.epochs == 3 and changed.hash != p.hash


def test_setup_changes_are_the_overrides_that_change_the_setup():
    base = get_protocol("vdv-smnist-task")
    data = lambda p: p.model_dump(mode="json")  # noqa: E731
    made = apply_overrides(base, ["environment.kind=cumulative", "training.epochs=1", "training.iterations=2000",
                                  "model.hidden=[100,100]", "benchmark.n_tasks=5"])  # n_tasks: no change
    assert setup_changes(data(made), data(base)) == [
        "model.hidden=[100,100]", "training.epochs=1", "training.iterations=2000"]  # environment is no setup
    assert setup_changes(data(base), data(made)) == [
        "model.hidden=[400,400]", "training.epochs=25", "training.iterations=null"]
    assert setup_changes(data(apply_overrides(base, ["benchmark.scenario=class"])), data(base)) == [
        "benchmark.scenario=class"]
    # a default left out of an older record's protocol is no change
    # (split MNIST's own scenario is class-incremental)
    own = data(get_protocol("vdv-smnist-class"))
    old = json.loads(json.dumps(own))
    del old["training"]["iterations"], old["benchmark"]["scenario"]
    assert setup_changes(old, own) == [] == setup_changes(own, old)
    assert setup_changes(old, data(base)) == ["benchmark.scenario=class"]


def test_switching_environment_kind_keeps_shared_parameters():
    p = apply_overrides(get_protocol("smoke"), ["environment.kind=uniform"])
    assert p.environment.kind == "uniform"
    assert p.environment.rehearsal_fraction == get_protocol("smoke").environment.rehearsal_fraction
    q = apply_overrides(get_protocol("smoke"), ["environment.kind=exponential", "environment.beta=2"])
    assert q.environment.beta == 2.0


def test_override_lists_and_paper_table_switch():
    p = apply_overrides(get_protocol("smoke"), ["environment.kind=count-table",
                                                "environment.counts_by_lag=[2000,100,50]"])
    assert p.env_matrix()[2] == [50, 100, 2000]


@pytest.mark.parametrize("assignment,message", [
    ("training.epoch=3", "did you mean 'training.epochs'"),
    ("training.epochs", "KEY=VALUE"),
    ("training.epochs=abc", "training.epochs"),
    ("training.epochs=0", "greater than 0"),
    ("benchmark.n_tasks=-2", "greater than 0"),
    ("environment.rehearsal_fraction=1.5", "less than or equal to 1"),
    ("environment.kind=lognormal", "environment"),
    ("environment.new_samples=3000", "more than its training pool"),
])
def test_bad_overrides_are_one_line_errors(assignment, message):
    with pytest.raises(ClbenchError) as info:
        apply_overrides(get_protocol("smoke"), [assignment])
    text = str(info.value)
    assert message in text and "\n" not in text


def test_split_benchmark_must_divide_classes():
    with pytest.raises(ClbenchError, match="do not split evenly"):
        apply_overrides(get_protocol("smnist-5"), ["benchmark.n_tasks=3"])


def test_cli_protocol_commands(cli):
    code, out, _ = cli("protocols", "--json")
    assert code == 0 and {r["name"] for r in json.loads(out)} == set(PROTOCOLS)
    code, out, _ = cli("protocols", "show", "pmnist-paper", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["hash"] == get_protocol("pmnist-paper").hash
    code, out, _ = cli("protocols", "show", "smoke", "--set", "training.epochs=5", "--json")
    assert json.loads(out)["training"]["epochs"] == 5
    assert json.loads(out)["hash"] != get_protocol("smoke").hash


def test_cli_env_matrix_json(cli):
    code, out, _ = cli("env-matrix", "--protocol", "pmnist-paper", "--json")
    assert code == 0
    assert json.loads(out)["matrix"] == get_protocol("pmnist-paper").env_matrix()
    code, out, _ = cli("env-matrix", "--protocol", "smoke", "--set", "environment.kind=sequential", "--json")
    assert json.loads(out)["matrix"] == [[2000, 0, 0], [0, 2000, 0], [0, 0, 2000]]
