"""Suites: planning, skipping finished runs, resuming, and failure isolation."""

import json
import time

import pytest
import torch

from clbench import Method, hookimpl
from clbench import plugins as plugins_module
from clbench.records import read_record
from clbench.suites import SUITES, Suite, Variant, get_suite, plan, run_suite

QUICK = ("training.epochs=1", "benchmark.train_samples_per_task=500", "benchmark.test_samples_per_task=200",
         "evaluation.curve_points=2", "evaluation.curve_test_samples=100")
TINY = Suite("tiny", "test suite", (
    Variant("smoke", "naive", QUICK),
    Variant("smoke", "naive", (*QUICK, "environment.kind=uniform")),
), seeds=(0, 1))


def _quiet(line):
    pass


def test_paper_suites_are_defined_as_the_issue_asks():
    environments = get_suite("paper-environments")
    kinds = {v.overrides[0].split("=")[1] for v in environments.variants if v.method == "naive"}
    assert kinds == {"sequential", "uniform", "exponential", "power-law", "power-law-unrestricted", "cumulative"}
    assert {(v.method, v.overrides[0]) for v in environments.variants if v.method != "naive"} == {
        ("ewc", "environment.kind=sequential"), ("si", "environment.kind=sequential"),
        ("lwf", "environment.kind=sequential"), ("replay", "environment.kind=sequential"),
        ("lwf", "environment.kind=power-law"), ("ewc", "environment.kind=power-law")}
    runs = plan(get_suite("paper-robustness"))
    assert len({r.run_id for r in runs}) == len(runs)  # no run twice
    tasks = {r.protocol.benchmark.n_tasks for r in runs}
    rehearsal = {r.protocol.environment.rehearsal_fraction for r in runs if r.protocol.environment.kind != "sequential"}
    assert tasks == {5, 10, 20} and rehearsal == {0.1, 0.25, 0.5, 1.0}
    assert {r.protocol.model.hidden for r in runs} == {(100, 100), (400, 400), (1000, 1000)}
    assert all("class" in r.registered.method.scenarios for r in plan(get_suite("split-mnist")))


def test_run_skip_and_resume(tmp_path, data_root):
    runs = plan(TINY)
    assert len(runs) == 4 and len({r.run_id for r in runs}) == 4
    first = run_suite(runs, tmp_path, data_root, log=_quiet)
    assert len(first.completed) == 4 and not first.failed
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 4
    matrices = {p.name: read_record(p).accuracy_matrix for p in files}

    again = run_suite(runs, tmp_path, data_root, log=_quiet)
    assert not again.completed and len(again.skipped) == 4

    files[0].unlink()  # a lost record
    files[1].write_text("{ truncated")  # a corrupted one
    resumed = run_suite(runs, tmp_path, data_root, log=_quiet)
    assert len(resumed.completed) == 2 and len(resumed.skipped) == 2
    assert {p.name: read_record(p).accuracy_matrix for p in sorted(tmp_path.glob("*.json"))} == matrices


class Exploding:
    @hookimpl
    def clbench_register_methods(register):
        def factory(ctx, hp):
            raise RuntimeError("boom")

        register(Method(name="exploding", factory=factory))


def test_a_failing_run_does_not_stop_the_suite(tmp_path, data_root, monkeypatch):
    monkeypatch.setattr(plugins_module, "_REGISTRY", plugins_module.load_registry({"x": Exploding}))
    suite = Suite("mixed", "", (Variant("smoke", "exploding", QUICK), Variant("smoke", "naive", QUICK)), seeds=(0,))
    outcome = run_suite(plan(suite), tmp_path, data_root, log=_quiet)
    assert [p.variant.method for p, _ in outcome.failed] == ["exploding"]
    assert "boom" in outcome.failed[0][1]
    assert [p.variant.method for p in outcome.completed] == ["naive"]
    assert len(list(tmp_path.glob("*.json"))) == 1  # no record for the failed run


def test_cli(cli, tmp_path, data_root, monkeypatch):
    monkeypatch.setitem(SUITES, "tiny", lambda: TINY)
    code, out, _ = cli("suite", "--list")
    assert code == 0 and "paper-environments" in out and "tiny" in out
    code, out, _ = cli("suite", "tiny", "--dry-run", "--out", tmp_path)
    assert code == 0 and out.count("todo") == 4
    code, out, err = cli("suite", "tiny", "--seeds", "0", "--out", tmp_path, "--data-root", data_root)
    assert code == 0 and "2 run, 0 already done, 0 failed" in out
    code, out, _ = cli("suite", "tiny", "--dry-run", "--out", tmp_path)
    assert out.count("done ") == 2 and out.count("todo") == 2
    code, _, err = cli("suite", "paper-enviroments")
    assert code == 2 and "did you mean 'paper-environments'" in err
    code, _, err = cli("suite")
    assert code == 2 and "NAME" in err


def _matrices(folder):
    return {p.name: read_record(p).accuracy_matrix for p in sorted(folder.glob("*.json"))}


def test_process_executor_gives_the_same_records_as_local(tmp_path, data_root):
    runs = plan(TINY, seeds=(0,))
    local = run_suite(runs, tmp_path / "local", data_root, log=_quiet)
    process = run_suite(runs, tmp_path / "process", data_root, log=_quiet, executor="process", jobs=2)
    assert len(local.completed) == len(process.completed) == 2
    assert _matrices(tmp_path / "local") == _matrices(tmp_path / "process")


def test_sigkill_mid_suite_then_resume_equals_an_uninterrupted_suite(tmp_path, data_root):
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "clbench", "suite", "smoke-environments", "--data-root", str(data_root)]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    process = subprocess.Popen([*command, "--out", str(killed)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list(killed.glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(killed.glob("*.json")))
    assert 2 <= done_before < 6
    for path in killed.glob("*.json"):
        read_record(path)  # every record that exists is complete and valid

    resumed = subprocess.run([*command, "--out", str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{6 - done_before} run, {done_before} already done, 0 failed" in resumed.stdout
    subprocess.run([*command, "--out", str(clean)], check=True, capture_output=True)
    assert _matrices(killed) == _matrices(clean) and len(_matrices(clean)) == 6


def _nan_factory(ctx, hp):
    """Poisons the loss after a few steps: the optimizer's own step then makes every weight,
    and every later loss, NaN (poisoning the weights directly would be an update outside
    the counted steps, which the audit reports first)."""
    from avalanche.core import SupervisedPlugin
    from avalanche.training.supervised import Naive

    class Poison(SupervisedPlugin):
        def before_backward(self, strategy, **kwargs):
            if strategy.clock.train_iterations >= 3:
                strategy.loss = strategy.loss * float("nan")

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(Poison())
    return Naive(**kwargs)


def _slow_factory(ctx, hp):
    from avalanche.core import SupervisedPlugin
    from avalanche.training.supervised import Naive

    class Slow(SupervisedPlugin):
        def after_training_iteration(self, strategy, **kwargs):
            time.sleep(0.2)

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(Slow())
    return Naive(**kwargs)


class Faulty:
    @hookimpl
    def clbench_register_methods(register):
        register(Method(name="nan-loss", factory=_nan_factory))
        register(Method(name="slow", factory=_slow_factory))


def test_nan_losses_and_time_limits_give_failure_records(tmp_path, data_root, monkeypatch, cli):
    monkeypatch.setattr(plugins_module, "_REGISTRY", plugins_module.load_registry({"faulty": Faulty}))
    suite = Suite("faults", "", (Variant("smoke", "nan-loss", QUICK), Variant("smoke", "naive", QUICK)), seeds=(0,))
    outcome = run_suite(plan(suite), tmp_path, data_root, log=_quiet)
    slow = Suite("slow", "", (Variant("smoke", "slow", QUICK),), seeds=(0,))
    timed_out = run_suite(plan(slow), tmp_path, data_root, log=_quiet, time_limit_s=3.0)
    reasons = {p.variant.method: reason for p, reason in outcome.failed + timed_out.failed}
    assert set(reasons) == {"nan-loss", "slow"}
    assert reasons["nan-loss"].startswith("NonFiniteLoss") and reasons["slow"].startswith("RunTimeLimit")
    assert [p.variant.method for p in outcome.completed] == ["naive"]
    failures = sorted(tmp_path.glob("*.failure"))
    assert len(failures) == 2 and len(list(tmp_path.glob("*.log"))) == 2
    assert json.loads(failures[0].read_text())["status"] == "failed"
    assert "Traceback" in next(tmp_path.glob("*nan-loss*.log")).read_text()
    # failed runs are never counted in a leaderboard: only the one real record is read
    code, out, _ = cli("leaderboard", tmp_path, "--format", "json")
    assert code == 0 and [entry["method"] for entry in json.loads(out)] == ["naive"]
    # evaluate reports a failing method in one line, exit 1, with the traceback kept
    code, _, err = cli("evaluate", "nan-loss", "--protocol", "smoke", "--seeds", "0", "--set", QUICK[0],
                       "--data-root", data_root, "--out", tmp_path / "eval")
    assert code == 1 and len(err.strip().splitlines()) == 2  # header line + the one error line
    assert "nan-loss failed on seed 0: NonFiniteLoss" in err
    assert list((tmp_path / "eval").glob("*.json")) == []


def test_ray_executor_on_a_local_instance_gives_the_same_records(tmp_path, data_root):
    pytest.importorskip("ray")
    runs = plan(TINY, seeds=(0,))
    local = run_suite(runs, tmp_path / "local", data_root, log=_quiet)
    on_ray = run_suite(runs, tmp_path / "ray", data_root, log=_quiet, executor="ray", jobs=1)
    assert len(on_ray.completed) == len(local.completed) == 2 and not on_ray.failed
    assert _matrices(tmp_path / "ray") == _matrices(tmp_path / "local")
