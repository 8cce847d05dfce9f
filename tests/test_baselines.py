"""The baseline catalogue (plugins/clbench-baselines): every method end to end on real MNIST,
its declaration (`clbench methods --json`) and its hyperparameter validation."""

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from pydantic import ValidationError

from clbench.cli import main
from clbench.plugins import load_registry
from clbench.records import read_record

PLUGIN = "clbench-baselines"

#: Declared stored exemplars on a 3-task protocol with default hyperparameters.
SMOKE_EXEMPLARS = {
    "naive": 0, "ewc": 0, "online-ewc": 0, "si": 0, "mas": 0, "lwf": 0,
    "replay": 200, "gdumb": 200, "der": 200, "er-ace": 200,
    "gem": 3 * 256, "agem": 3 * 256,
}
ALL_METHODS = sorted([*SMOKE_EXEMPLARS, "icarl"])

SMALL_SPLIT_MNIST = ["--protocol", "smnist-5", "--set", "benchmark.n_tasks=5",
                     "--set", "benchmark.train_samples_per_task=2000",
                     "--set", "benchmark.test_samples_per_task=500",
                     "--set", "evaluation.curve_test_samples=500"]


@pytest.fixture(scope="module")
def evaluate(tmp_path_factory, data_root):
    """`clbench evaluate METHOD ... --seeds 0`, run once per (method, protocol args) and cached."""
    runs = {}

    def run(method, *protocol_args):
        key = (method, protocol_args)
        if key not in runs:
            out = tmp_path_factory.mktemp(method)
            code = main(["evaluate", method, *protocol_args, "--seeds", "0",
                         "--data-root", str(data_root), "--out", str(out), "-q"])
            runs[key] = (code, sorted(out.glob("*.json")))
        return runs[key]

    return run


def _single_record(code, paths):
    assert code == 0
    assert len(paths) == 1, paths
    return read_record(paths[0])


@pytest.mark.parametrize("method", sorted(SMOKE_EXEMPLARS))
def test_method_runs_the_smoke_protocol(evaluate, method):
    record = _single_record(*evaluate(method, "--protocol", "smoke"))
    R = record.accuracy_matrix
    assert len(R) == 3 and all(len(row) == 3 for row in R)
    assert record.method.name == method and record.method.plugin == PLUGIN
    assert record.method.version == version(PLUGIN)
    assert record.method.stored_exemplars == SMOKE_EXEMPLARS[method]
    defaults = load_registry().get(method).method.hyperparameters()
    assert record.method.hyperparameters == defaults.model_dump(mode="json")
    assert sum(R[j][j] for j in range(3)) / 3 > 0.4  # every method learns each new task


def test_si_is_not_naive(evaluate):
    """Avalanche 0.6's SI plugin snapshots weights as views on the CPU (all importances 0,
    training identical to naive); the baseline's plugin copies them."""
    si = _single_record(*evaluate("si", "--protocol", "smoke"))
    naive = _single_record(*evaluate("naive", "--protocol", "smoke"))
    assert si.accuracy_matrix[0] == naive.accuracy_matrix[0]  # no penalty in phase 0
    assert si.learning_curves[1:] != naive.learning_curves[1:]


def test_icarl_on_small_split_mnist(evaluate):
    record = _single_record(*evaluate("icarl", *SMALL_SPLIT_MNIST))
    R = record.accuracy_matrix
    assert len(R) == 5 and all(len(row) == 5 for row in R)
    assert record.method.plugin == PLUGIN and record.method.stored_exemplars == 2004
    assert all(R[j][j] > 0.3 for j in range(5)), R
    assert R[4][0] > 0.5, R  # exemplars + nearest-mean classifier keep the first classes


def test_icarl_refuses_domain_incremental(cli, tmp_path, data_root):
    out = tmp_path / "out"
    code, _, err = cli("evaluate", "icarl", "--protocol", "smoke", "--seeds", "0",
                       "--data-root", data_root, "--out", out, "-q")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clbench: error: ")
    assert "class-incremental" in lines[0] and "domain-incremental" in lines[0]
    assert not list(out.glob("*.json"))


def test_methods_json_lists_the_catalogue(cli):
    code, out, _ = cli("methods", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(ALL_METHODS) <= set(rows)
    for name in ALL_METHODS:
        assert rows[name]["plugin"] == PLUGIN and rows[name]["version"] == version(PLUGIN)
        assert rows[name]["description"]
    assert rows["icarl"]["scenarios"] == ["class"]
    # every baseline but icarl runs task-incremental too, except der (docs/scenarios.md)
    assert all(rows[m]["scenarios"] == (["domain", "class"] if m == "der" else ["task", "domain", "class"])
               for m in SMOKE_EXEMPLARS)
    # every hyperparameter, also one left out of records at its default (`added_later`)
    assert rows["ewc"]["hyperparameters"] == {"ewc_lambda": 500.0, "penalty": "merged", "fisher": "minibatch",
                                              "fisher_labels": "true"}
    assert rows["naive"]["hyperparameters"] == {}


def test_listing_methods_imports_neither_torch_nor_avalanche():
    code = ("import sys, clbench_baselines; from clbench.plugins import load_registry; "
            "load_registry(); heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'avalanche')]; sys.exit(1 if heavy else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("method,assignment,expected", [
    ("ewc", "ewc_lambda=-1", "greater than or equal to 0"),
    ("ewc", "lambda=-1", "has no hyperparameter 'lambda' (did you mean 'ewc_lambda'?)"),
    ("ewc", "ewc_lambda=big", "ewc_lambda"),
    ("online-ewc", "decay_factor=1.5", "less than or equal to 1"),
    ("si", "eps=0", "greater than 0"),
    ("mas", "alpha=-0.1", "greater than or equal to 0"),
    ("lwf", "temperature=0", "greater than 0"),
    ("replay", "mem_size=0", "greater than 0"),
    ("gdumb", "mem_size=-5", "greater than 0"),
    ("der", "beta=-1", "greater than or equal to 0"),
    ("er-ace", "batch_size_mem=0", "greater than 0"),
    ("gem", "patterns_per_exp=0", "greater than 0"),
    ("agem", "sample_size=0", "greater than 0"),
    ("icarl", "memory_size=0", "greater than 0"),
    ("icarl", "fixed_memory=false", "has no hyperparameter 'fixed_memory'"),
    ("naive", "lr=0.1", "has no hyperparameter 'lr'"),
])
def test_bad_hyperparameters_are_rejected(cli, tmp_path, method, assignment, expected):
    out = tmp_path / "out"
    code, _, err = cli("evaluate", method, "--protocol", "smoke", "--hp", assignment,
                       "--data-root", tmp_path, "--out", out)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], err
    assert not out.exists()


def test_hyperparameter_models_are_frozen_and_closed():
    registry = load_registry()
    for name in ALL_METHODS:
        model = registry.get(name).method.hyperparameters
        assert model.model_config.get("frozen") and model.model_config.get("extra") == "forbid"
        hp = model()
        for field in model.model_fields:
            with pytest.raises(ValidationError):
                setattr(hp, field, getattr(hp, field))
    assert registry.get("ewc").method.hyperparameters(ewc_lambda=0).ewc_lambda == 0


@pytest.mark.parametrize("method,hyperparameters,n_tasks,expected", [
    ("ewc", {}, 10, 0),
    ("lwf", {}, 10, 0),
    ("replay", {"mem_size": 500}, 10, 500),
    ("der", {}, 10, 200),
    ("gem", {}, 10, 2560),
    ("agem", {"patterns_per_exp": 100}, 20, 2000),
    ("icarl", {"memory_size": 1000}, 10, 1008),  # 9 classes seen: 9 * ceil(1000 / 9)
    ("icarl", {}, 5, 2004),  # smnist-5: 6 classes seen: 6 * ceil(2000 / 6)
])
def test_declared_stored_exemplars(method, hyperparameters, n_tasks, expected):
    registered = load_registry().get(method).method
    hp = registered.hyperparameters(**hyperparameters)
    assert registered.exemplars(hp, n_tasks, 10) == expected


@pytest.mark.parametrize("method", ALL_METHODS)
def test_check_plugin_passes(method, data_root):
    """What `clbench check-plugin METHOD` runs: every check passes for every baseline."""
    from clbench.testing import check_method

    report = check_method(method, data_root=data_root)
    assert report.passed, report.summary()
