"""Bounded resources and strict inputs: every size a user controls has a checked bound,
extreme but finite values give valid results, non-finite values and booleans never pass,
and nothing asks for more data than the dataset has (issue 12 items 2 and 4, issue 10
item 7)."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clbench import Hyperparameters, Method, NoHyperparameters
from clbench import bounds
from clbench.environments import (
    CountTable, Exponential, PowerLaw, PowerLawUnrestricted, StochasticPowerLaw, Uniform, dense,
)
from clbench.errors import ClbenchError
from clbench.presets import PROTOCOLS, get_protocol
from clbench.protocol import apply_overrides


def _one_line(code, out, err):
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clbench: error: "), err
    return lines[0]


def _refused(assignments, protocol="smoke"):
    with pytest.raises(ClbenchError) as info:
        apply_overrides(get_protocol(protocol), assignments)
    text = str(info.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------ bounds, before any work

@pytest.mark.parametrize("assignments, field", [
    (["benchmark.n_tasks=100000"], "benchmark.n_tasks"),
    (["benchmark.n_tasks=1000000000000000000000000000000"], "benchmark.n_tasks"),
    (["benchmark.n_tasks=1001"], "less than or equal to 1000"),
    (["benchmark.train_samples_per_task=1000001"], "benchmark.train_samples_per_task"),
    (["benchmark.test_samples_per_task=1000001"], "benchmark.test_samples_per_task"),
    (["model.hidden=[100001]"], "model.hidden.0"),
    ([f"model.hidden={[10] * 101}"], "model.hidden"),
    (["model.hidden=[100000,100000]"], "parameters"),
    (["model.hidden=[20000,20000]"], "more than the bound of 100,000,000"),
    (["training.batch_size=1000001"], "training.batch_size"),
    (["evaluation.batch_size=1000001"], "evaluation.batch_size"),
    (["training.epochs=1001"], "training.epochs"),
    (["evaluation.curve_points=1001"], "evaluation.curve_points"),
    (["evaluation.curve_test_samples=1000001"], "evaluation.curve_test_samples"),
    ([f"seeds={list(range(1001))}"], "seeds"),
    (["name=" + "a" * 101], "name"),
    (["description=" + "x" * 2001], "description"),
    (["environment.new_samples=1000001"], "environment.new_samples"),
    (["environment.kind=count-table", f"environment.counts_by_lag={[1] * 1001}"],
     "environment.counts_by_lag"),
    (["environment.kind=count-table", "environment.counts_by_lag=[1000, 1000001, 1]"],
     "environment.counts_by_lag.1"),
    (["seeds=[9223372036854775808]"], "64-bit"),
])
def test_every_user_size_has_a_bound_named_in_one_line(assignments, field):
    assert field in _refused(assignments)


def test_huge_task_counts_are_refused_at_once_by_every_command(cli, tmp_path):
    out = tmp_path / "out"
    for command in (["protocols", "show", "smoke"], ["env-matrix", "-p", "smoke"],
                    ["evaluate", "naive", "-p", "smoke", "--out", str(out), "--data-root", str(tmp_path)]):
        for n in ("100000", "1" + "0" * 30, "1" + "0" * 5000):
            started = time.perf_counter()
            line = _one_line(*cli(*command, "--set", f"benchmark.n_tasks={n}"))
            assert time.perf_counter() - started < 2, command
            assert "benchmark.n_tasks" in line
    assert not out.exists()


def test_a_protocol_beyond_the_memory_bound_is_refused_before_any_data_is_read(cli, tmp_path):
    # 1,000 smoke tasks hold 8.8 GiB of task tensors: this used to pass 6 GB in 18 s
    out = tmp_path / "out"
    started = time.perf_counter()
    line = _one_line(*cli("evaluate", "naive", "-p", "smoke", "--set", "benchmark.n_tasks=1000",
                          "--set", "environment.kind=stochastic-power-law",
                          "--data-root", tmp_path, "--out", out))
    assert time.perf_counter() - started < 2
    assert "more than the bound of 8.0 GiB" in line and "benchmark.n_tasks" in line
    assert not out.exists()


def test_the_largest_allowed_task_count_validates_without_a_dense_matrix():
    # 1,000 tasks of 100 samples fit every bound; validation is O(T), never T x T
    started = time.perf_counter()
    p = apply_overrides(get_protocol("smoke"), [
        "benchmark.n_tasks=1000", "benchmark.train_samples_per_task=100",
        "benchmark.test_samples_per_task=100", "evaluation.curve_test_samples=100",
        "environment.kind=stochastic-power-law"])
    assert time.perf_counter() - started < 1
    assert p.memory_estimate().total < bounds.MAX_MEMORY


def test_stochastic_rows_scale_with_their_non_zero_entries():
    env = StochasticPowerLaw()
    tracemalloc.start()
    try:
        nonzero = sum(len(row) for row in env.rows(1000, 2000, seed=0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 1,000 x 1,000 dense rows alone would take 8 MB of pointers; one phase at a time
    # needs only the O(T) state and the current row
    assert peak < 500_000, peak
    assert 1000 <= nonzero < 1000 * 1001 // 2
    small = dense(env.rows(30, 2000, seed=4), 30)
    assert small == env.matrix(30, 2000, seed=4)
    assert sum(c > 0 for row in small for c in row) == sum(len(r) for r in env.rows(30, 2000, seed=4))


def test_largest_phase_bounds_every_phase_of_every_kind():
    for env in [Uniform(), Exponential(beta=0.5), PowerLaw(), PowerLawUnrestricted(),
                CountTable(counts_by_lag=(500, 300, 200, 100, 50, 0, 7)), StochasticPowerLaw()]:
        for T in (1, 2, 7):
            largest = env.largest_phase(T, 500)
            for seed in range(5):
                assert max(sum(row) for row in env.matrix(T, 500, seed)) <= largest, env


# ------------------------------------------------- extreme but finite environment values

@pytest.mark.parametrize("assignments", [
    ["environment.tau=1e308"],
    ["environment.alpha=1000"],
    ["environment.alpha=1e308"],
    ["environment.tau=5e-324"],
    ["environment.kind=exponential", "environment.beta=1e-5"],
    ["environment.kind=exponential", "environment.beta=5e-324"],
    ["environment.kind=exponential", "environment.beta=1e308"],
    ["environment.kind=power-law-unrestricted", "environment.tau=1e308"],
    ["environment.kind=power-law-unrestricted", "environment.alpha=1e308"],
    ["environment.kind=stochastic-power-law", "environment.alpha=1e308"],
])
def test_extreme_finite_parameters_give_valid_matrices(cli, assignments):
    sets = [a for text in assignments for a in ("--set", text)]
    code, out, err = cli("env-matrix", "-p", "smoke", "--set", "benchmark.n_tasks=6", *sets, "--json")
    assert code == 0, err
    matrix = json.loads(out)["matrix"]
    protocol = apply_overrides(get_protocol("smoke"), ["benchmark.n_tasks=6", *assignments])
    budget = round(0.5 * 2000)
    for p, row in enumerate(matrix):
        assert row[p] == 2000 and all(c == 0 for c in row[p + 1:])
        assert all(0 <= c <= 2000 for c in row)
        if protocol.environment.kind in ("power-law", "exponential") and p:
            assert sum(row[:p]) == budget  # the budget is spent exactly, whatever the weights


def test_underflowing_weights_follow_their_limits():
    # tau -> inf: every lag weighs the same; alpha or 1/beta -> inf: the latest task takes all
    flat = PowerLaw(tau=1e308, rehearsal_fraction=0.3).matrix(4, 1000)
    assert flat[3][:3] == Uniform(rehearsal_fraction=0.3).matrix(4, 1000)[3][:3]
    steep = PowerLaw(alpha=1000, rehearsal_fraction=0.3).matrix(4, 1000)
    assert steep[3][:3] == [0, 0, 300]
    assert Exponential(beta=1e-5, rehearsal_fraction=0.3).matrix(4, 1000)[3][:3] == [0, 0, 300]


# ------------------------------------------------------- non-finite values and booleans

@pytest.mark.parametrize("assignments, field", [
    (["environment.kind=exponential", "environment.beta=Infinity"], "environment.beta"),
    (["environment.tau=NaN"], "environment.tau"),
    (["environment.alpha=1e999"], "environment.alpha"),
    (["training.lr=-Infinity"], "training.lr"),
    (["training.weight_decay=NaN"], "training.weight_decay"),
    (["model.dropout=NaN"], "model.dropout"),
    (["evaluation.facilitation_threshold=NaN"], "evaluation.facilitation_threshold"),
])
def test_non_finite_protocol_values_are_refused(assignments, field):
    text = _refused(assignments)
    assert field in text and "finite" in text


@pytest.mark.parametrize("assignments, field", [
    (["benchmark.n_tasks=true"], "benchmark.n_tasks"),
    (["training.lr=true"], "training.lr"),
    (["training.epochs=false"], "training.epochs"),
    (["model.hidden=[true]"], "model.hidden"),
    (["environment.rehearsal_fraction=true"], "environment.rehearsal_fraction"),
    (["environment.new_samples=true"], "environment.new_samples"),
    (["environment.kind=count-table", "environment.counts_by_lag=[true, 1, 1]"], "environment.counts_by_lag"),
    (["seeds=[true]"], "seeds"),
    (["evaluation.curve_test_samples=true"], "evaluation.curve_test_samples"),
])
def test_a_boolean_is_not_a_number(assignments, field):
    text = _refused(assignments)
    assert field in text and "boolean" in text


def test_beta_infinity_never_trains(cli, tmp_path, data_root):
    out = tmp_path / "out"
    line = _one_line(*cli("evaluate", "naive", "-p", "smoke", "--set", "environment.kind=exponential",
                          "--set", "environment.beta=Infinity", "--data-root", data_root, "--out", out))
    assert "environment.beta" in line and "finite" in line
    assert not out.exists()


def test_odd_command_line_values_are_one_line_errors(cli):
    for assignment in ("benchmark.n_tasks=" + "9" * 5000, "model.hidden=" + "[" * 100_000,
                       "environment.kind=x\ny", "bench\nmark.n_tasks=3", "training.lr=\x00"):
        _one_line(*cli("protocols", "show", "smoke", "--set", assignment))


# ------------------------------------------------------------ no silent substitutions

def test_asking_for_more_test_images_than_mnist_has_is_an_error(cli, tmp_path, data_root):
    out = tmp_path / "out"
    line = _one_line(*cli("evaluate", "naive", "-p", "smoke", "--set", "benchmark.test_samples_per_task=20000",
                          "--data-root", data_root, "--out", out))
    assert "test_samples_per_task=20000" in line and "10,000" in line
    assert not out.exists()
    assert "60,000" in _refused(["benchmark.train_samples_per_task=60001"])
    assert "curve_test_samples" in _refused(["evaluation.curve_test_samples=1001"])  # smoke tests 1,000


def test_a_split_task_smaller_than_asked_is_refused_before_anything_is_written(cli, tmp_path, data_root):
    from clbench.tasks import load_tasks, preload

    # task 2 of Split MNIST (digits 4 and 5) has 1,874 test images; 2,000 is too many
    protocol = apply_overrides(get_protocol("smnist-5"), ["benchmark.test_samples_per_task=2000"])
    with pytest.raises(ClbenchError, match=r"task 2 \(classes \[4, 5\]\) has only 1874 test samples"):
        preload(protocol.benchmark, data_root)
    with pytest.raises(ClbenchError, match="has only 1874 test samples"):
        load_tasks(protocol.benchmark, data_root, seed=0)
    # a seeded class order is refused when any seed could fall short, not only the unlucky ones
    seeded = apply_overrides(get_protocol("smnist-5"), ["benchmark.class_order=seeded",
                                                        "benchmark.train_samples_per_task=11500"])
    with pytest.raises(ClbenchError, match="rarest classes"):
        preload(seeded.benchmark, data_root)
    out = tmp_path / "out"
    line = _one_line(*cli("evaluate", "naive", "-p", "smnist-5", "--set", "benchmark.test_samples_per_task=2000",
                          "--data-root", data_root, "--out", out))
    assert "has only 1874 test samples" in line
    assert not out.exists()


def test_switching_to_the_stochastic_kind_uses_its_own_defaults():
    for name in ("smoke", "pmnist-10"):
        p = apply_overrides(get_protocol(name), ["environment.kind=stochastic-power-law"])
        assert p.environment.alpha == 1.0  # not the power law's 5.6
        assert p.environment.recurrence_fraction == 0.25
    # ... and back: the power law's own alpha, not the stochastic kind's
    back = apply_overrides(get_protocol("smoke"), ["environment.kind=stochastic-power-law",
                                                   "environment.alpha=2.5"])
    assert back.environment.alpha == 2.5  # set alongside the switch: applies to the new kind
    again = apply_overrides(back, ["environment.kind=power-law"])
    assert again.environment.alpha == 5.6
    # parameters that mean the same carry over: the budget between budgeted kinds, the
    # power laws' shape between the two deterministic power laws, new_samples everywhere
    shaped = apply_overrides(get_protocol("smoke"), ["environment.tau=3", "environment.alpha=2",
                                                     "environment.new_samples=1500"])
    unrestricted = apply_overrides(shaped, ["environment.kind=power-law-unrestricted"])
    assert (unrestricted.environment.tau, unrestricted.environment.alpha) == (3.0, 2.0)
    assert unrestricted.environment.new_samples == 1500
    assert apply_overrides(get_protocol("smoke"), ["environment.kind=uniform"]).environment.rehearsal_fraction == 0.5


# ------------------------------------------------------------------ the memory estimate

def test_protocols_show_states_the_memory_it_needs(cli):
    code, out, _ = cli("protocols", "show", "smoke")
    memory = [line for line in out.splitlines() if line.startswith("# memory: about ")]
    assert code == 0 and len(memory) == 1 and "not counted" in memory[0]
    code, out, _ = cli("protocols", "show", "smoke", "--json")
    shown = json.loads(out)["memory_estimate_bytes"]
    assert shown["total"] == shown["dataset"] + shown["tasks"] + shown["phase"] + shown["model"]
    assert shown["tasks"] == 3 * (2000 + 1000) * (784 * 4 + 8)
    assert shown["model"] == (784 * 256 + 256 + 256 * 10 + 10) * 4 * 4  # weights, grads, Adam's two


def test_the_estimate_counts_what_load_tasks_really_holds(data_root):
    from clbench.models import build_model, count_parameters
    from clbench.tasks import load_tasks

    for name, overrides in (("smoke", []), ("smnist-5", ["benchmark.train_samples_per_task=3000"]),
                            ("smoke", ["model.batch_norm=true", "model.hidden=[30,20]"])):
        protocol = apply_overrides(get_protocol(name), overrides)
        tasks = load_tasks(protocol.benchmark, data_root, seed=0)
        held = sum(t.nbytes for task in tasks for t in (task.train_x, task.train_y, task.test_x, task.test_y))
        assert abs(held - protocol.memory_estimate().tasks) <= 0.1 * held  # split tasks vary in size
        model = build_model(protocol.model, protocol.benchmark.input_size, protocol.benchmark.n_classes)
        assert count_parameters(model) == protocol.parameters


def test_every_preset_is_within_every_bound():
    for protocol in PROTOCOLS.values():
        assert protocol.memory_estimate().total <= bounds.MAX_MEMORY
        assert protocol.parameters <= bounds.MAX_PARAMETERS


def test_standardising_a_subset_is_bit_identical_to_the_whole_split(data_root):
    import torch

    from clbench.datasets import load_raw
    from clbench.seeding import torch_generator
    from clbench.tasks import _subset, load_tasks

    raw = load_raw("mnist", data_root)
    whole_train, whole_test = raw.standardised(raw.train_x), raw.standardised(raw.test_x)
    protocol = apply_overrides(get_protocol("smoke"), ["benchmark.train_samples_per_task=777"])
    for seed in (0, 5):
        for t, task in enumerate(load_tasks(protocol.benchmark, data_root, seed)):
            permutation = torch.randperm(784, generator=torch_generator(seed, "permutation", t))
            pool = _subset(60000, 777, seed, "pool", t)
            test = _subset(10000, 1000, seed, "test", t)
            assert torch.equal(task.train_x.reshape(777, -1), whole_train[pool][:, permutation])
            assert torch.equal(task.test_x.reshape(1000, -1), whole_test[test][:, permutation])


def test_tasks_keep_no_standardised_copy_of_the_whole_dataset(data_root):
    from clbench.datasets import load_raw
    from clbench.tasks import load_tasks

    tasks = load_tasks(get_protocol("smoke").benchmark, data_root, seed=0)
    assert "standardised_splits" not in vars(load_raw("mnist", data_root))
    assert all(len(t.train_x) == 2000 and len(t.test_x) == 1000 for t in tasks)


# --------------------------------------------------------- method hyperparameters

class _Strength(Hyperparameters):
    strength: float = Field(1.0, ge=0)
    size: int = 10
    widths: tuple[int, ...] = (1, 2)
    flag: bool = False


class _Plain(BaseModel):  # a plugin that does not inherit clbench.Hyperparameters
    model_config = ConfigDict(frozen=True)
    strength: float = 1.0
    size: int = 10


def _method(hp):
    return Method(name="probe", factory=lambda ctx, hp: None, hyperparameters=hp)


_BAD_HYPERPARAMETERS = [
    ({"strength": float("inf")}, "strength", "finite"),
    ({"strength": float("nan")}, "strength", "finite"),
    ({"strength": True}, "strength", "boolean"),
    ({"size": False}, "size", "boolean"),
]


@pytest.mark.parametrize("hp, values, field, message", [
    *[(_Strength, *case) for case in _BAD_HYPERPARAMETERS],
    *[(_Plain, *case) for case in _BAD_HYPERPARAMETERS],  # a plain model gets the same rules
    (_Strength, {"size": 2**64}, "size", "64-bit"),
])
def test_hyperparameters_refuse_non_finite_numbers_and_booleans(hp, values, field, message):
    with pytest.raises(ClbenchError) as info:
        _method(hp).parse_hyperparameters(values)
    text = str(info.value)
    assert field in text and message in text and "\n" not in text


def test_the_hyperparameters_base_is_frozen_strict_and_keeps_booleans_where_meant():
    hp = _Strength.model_validate({"flag": True, "widths": [3, 4], "strength": 2})
    assert hp.flag is True and hp.widths == (3, 4) and hp.strength == 2.0
    with pytest.raises(ValidationError):
        _Strength.model_validate({"widths": [1, True]})
    with pytest.raises(ValidationError):
        _Strength.model_validate({"unknown": 1})
    with pytest.raises(ValidationError):
        hp.strength = 3.0
    assert NoHyperparameters().model_dump() == {}
    assert issubclass(NoHyperparameters, Hyperparameters)


def test_every_installed_plugin_model_inherits_the_base():
    from clbench.plugins import get_registry

    registry = get_registry()
    assert registry.methods
    for name, registered in registry.methods.items():
        assert issubclass(registered.method.hyperparameters, Hyperparameters), name


@pytest.mark.parametrize("hp, field", [("ewc_lambda=Infinity", "ewc_lambda"), ("ewc_lambda=true", "ewc_lambda"),
                                       ("ewc_lambda=NaN", "ewc_lambda")])
def test_bad_hyperparameters_on_the_command_line(cli, tmp_path, data_root, hp, field):
    out = tmp_path / "out"
    line = _one_line(*cli("evaluate", "ewc", "-p", "smoke", "--hp", hp, "--data-root", data_root, "--out", out))
    assert field in line
    assert not out.exists()
