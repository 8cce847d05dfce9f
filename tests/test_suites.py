"""Suites: planning, skipping finished runs, resuming, and failure isolation."""

import pytest

from clbench import Method, hookimpl
from clbench import plugins as plugins_module
from clbench.records import read_record
from clbench.suites import SUITES, Suite, Variant, get_suite, plan, run_suite

QUICK = ("training.epochs=1", "benchmark.train_samples_per_task=500", "benchmark.test_samples_per_task=200",
         "evaluation.curve_points=2")
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
