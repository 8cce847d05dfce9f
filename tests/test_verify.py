"""Records a reviewer can check: `clbench verify`, checks on read, and checked checkpoints.

The seal is an unkeyed sha256, so these tests forge records the way anyone could (edit,
recompute the run id, reseal) and show what still catches them.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from clbench import checkpoint as ckpt
from clbench.errors import ClbenchError
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.records import canonical_json, read_record, run_id
from clbench.runner import RunRequest, run
from clbench.testing import _Interrupted, _Interrupter
from legacy import unaudited_copy

SMALL = ["benchmark.train_samples_per_task=300", "benchmark.test_samples_per_task=200",
         "evaluation.curve_test_samples=100", "training.epochs=1"]


@pytest.fixture(scope="module")
def record_file(tmp_path_factory, data_root) -> Path:
    """One real l2-anchor record on a small smoke protocol, written by `clbench evaluate`."""
    from clbench.cli import main

    out = tmp_path_factory.mktemp("records")
    code = main(["evaluate", "l2-anchor", "--protocol", "smoke", "--seeds", "0", "--out", str(out),
                 "--data-root", str(data_root), "-q", *sum((["--set", o] for o in SMALL), [])])
    assert code == 0
    [path] = out.glob("*.json")
    return path


def _forge(source: Path, target: Path, edit, new_id: bool = True) -> Path:
    """Edit a record's JSON, recompute its run id and reseal it, as anyone can."""
    data = json.loads(source.read_text())
    edit(data)
    if new_id:
        data["run_id"] = run_id(data["protocol"]["hash"], data["method"]["name"],
                                data["method"]["hyperparameters"], data["seed"])
    body = {k: v for k, v in data.items() if k != "integrity"}
    data["integrity"] = hashlib.sha256(canonical_json(body).encode()).hexdigest()
    target.write_text(json.dumps(data, indent=1))
    return target


# --- verify --------------------------------------------------------------------------------

def test_verify_confirms_an_untouched_record(cli, record_file, data_root):
    code, out, _ = cli("verify", record_file, "--data-root", data_root)
    assert code == 0, out
    assert f"CONFIRMED {record_file} (exact: same hardware, versions and device)" in out
    assert "1 of 1 record(s) confirmed" in out


def test_verify_rejects_changed_hyperparameters_that_were_resealed(cli, record_file, tmp_path, data_root):
    forged = _forge(record_file, tmp_path / "forged.json",
                    lambda d: d["method"]["hyperparameters"].update(strength=25.0))
    read_record(forged)  # the forgery passes every check on read
    code, out, _ = cli("verify", forged, "--data-root", data_root)
    assert code == 1
    assert f"MISMATCH  {forged}" in out and "accuracy_matrix[" in out and "(exact)" in out
    assert "0 of 1 record(s) confirmed" in out


def _other_machine(shift: float):
    """The record as if made on another CPU, with R[0][0] off by `shift` (metrics consistent)."""
    from clbench.metrics import compute_metrics

    def edit(data):
        data["hardware"]["processor"] = "another-cpu"
        data["accuracy_matrix"][0][0] = round(data["accuracy_matrix"][0][0] + shift, 6)
        data["metrics"] = compute_metrics(data["accuracy_matrix"], data["untrained_accuracy"],
                                          data["learning_curves"],
                                          data["protocol"]["evaluation"]["facilitation_threshold"])
    return edit


def test_verify_across_machines_uses_the_per_field_tolerances(cli, record_file, tmp_path, data_root):
    close = _forge(record_file, tmp_path / "close.json", _other_machine(-0.02), new_id=False)
    far = _forge(record_file, tmp_path / "far.json", _other_machine(-0.2), new_id=False)
    code, out, _ = cli("verify", close, far, "--data-root", data_root)
    assert code == 1
    assert f"CONFIRMED {close} (within per-field tolerances: hardware.processor differ(s))" in out
    assert f"MISMATCH  {far}" in out and "accuracy_matrix[0][0]" in out and "(tolerance 0.05)" in out
    assert "1 of 2 record(s) confirmed" in out


def test_verify_says_when_another_machine_reproduced_every_field_exactly(cli, record_file, tmp_path, data_root):
    """Records made on another kernel build, same results: a reviewer learns they match to the bit."""
    def other_kernel(data):
        data["hardware"]["platform"] += "-another-build"

    moved = _forge(record_file, tmp_path / "moved.json", other_kernel, new_id=False)
    code, out, _ = cli("verify", moved, "--data-root", data_root)
    assert code == 0
    assert f"CONFIRMED {moved} (every compared field identical, though hardware.platform differ(s))" in out


def test_verify_refuses_when_the_installed_plugin_differs(cli, record_file, tmp_path, data_root):
    other_version = _forge(record_file, tmp_path / "v.json", lambda d: d["method"].update(version="9.9.9"),
                           new_id=False)
    code, _, err = cli("verify", other_version, "--data-root", data_root)
    assert code == 2 and "pip install 'clbench-example==9.9.9'" in err
    assert len(err.strip().splitlines()) == 1
    other_files = _forge(record_file, tmp_path / "d.json",
                         lambda d: d["method"].update(plugin_digest="sha256:" + "0" * 64), new_id=False)
    code, _, err = cli("verify", other_files, "--data-root", data_root)
    assert code == 2 and "differs from the one that wrote the record" in err
    assert "pip install 'clbench-example==0.1.0'" in err


def test_the_digest_names_the_plugin_files_as_the_run_started(monkeypatch, data_root):
    """A plugin file edited while a long run goes on (say, the next experiment's code)
    must not be named in the record of a run that imported the old one."""
    import clbench.runner as runner

    digests = iter(["sha256:" + "a" * 64, "sha256:" + "b" * 64])
    current = {"digest": next(digests)}
    monkeypatch.setattr(runner, "plugin_digest", lambda distribution: current["digest"])

    class EditDuringTheRun:
        def phase_end(self, phase, accuracy_row, curve):
            current["digest"] = next(digests, current["digest"])

    registered = get_registry().get("l2-anchor")
    protocol = apply_overrides(get_protocol("smoke"), SMALL)
    record = run(RunRequest(protocol, registered, registered.method.parse_hyperparameters({}), 0, data_root,
                            listeners=[EditDuringTheRun()]))
    assert current["digest"] == "sha256:" + "b" * 64  # the files did change mid-run
    assert record.method.plugin_digest == "sha256:" + "a" * 64


def test_records_carry_the_plugin_digest_and_the_audit(record_file):
    from clbench.provenance import plugin_digest

    record = read_record(record_file)
    assert record.method.plugin_digest == plugin_digest("clbench-example")
    assert record.method.plugin_digest.startswith("sha256:")
    assert record.audit is not None and record.audit.rules_version == 1


# --- checks on read ------------------------------------------------------------------------

def test_a_resealed_record_whose_metrics_disagree_with_its_matrix_is_refused(cli, record_file, tmp_path):
    forged = _forge(record_file, tmp_path / "acc.json", lambda d: d["metrics"].update(acc=0.99))
    with pytest.raises(ClbenchError, match=r"metrics\.acc is 0\.99, but the accuracy matrix and "
                                           r"learning curves give 0\.\d+"):
        read_record(forged)
    code, _, err = cli("leaderboard", forged)
    assert code == 2 and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["metrics"].update(bwt=math.nan), "metrics.bwt"),
    (lambda d: d.update(seed=-1), "seed: Input should be greater than or equal to 0"),
    (lambda d: d.update(wall_time_s=-3.0), "wall_time_s: Input should be greater than or equal to 0"),
    (lambda d: d["accuracy_matrix"][0].__setitem__(0, 1.7), "accuracy_matrix.0.0"),
    (lambda d: d["samples_trained"].__setitem__(0, -5), "samples_trained.0"),
    (lambda d: d["audit"]["phases"][0].update(steps=10**6), "audit.phases.0.steps 1000000 exceeds its step_limit"),
    (lambda d: d["audit"]["phases"][0].update(step_limit=10**6), "audit.phases.0.step_limit is 1000000"),
    (lambda d: d["method"]["hyperparameters"].update(strength=math.inf), "non-finite"),
])
def test_impossible_numbers_are_refused_with_one_line(cli, record_file, tmp_path, edit, message):
    forged = _forge(record_file, tmp_path / "bad.json", edit)
    with pytest.raises(ClbenchError, match="invalid record") as info:
        read_record(forged)
    assert message in str(info.value)
    for command in (["leaderboard", forged], ["plot", forged, "--out", tmp_path / "figs"]):
        code, _, err = cli(*command)
        assert code == 2 and err.startswith("clbench: error: invalid record")
        assert len(err.strip().splitlines()) == 1  # never a traceback


def test_a_raw_nan_is_refused_on_read(cli, record_file, tmp_path):
    text = record_file.read_text().replace('"acc": ', '"acc": NaN, "was": ', 1)
    (tmp_path / "nan.json").write_text(text)
    code, _, err = cli("leaderboard", tmp_path / "nan.json")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_leaderboard_strict_leaves_out_unaudited_records(cli, record_file, tmp_path):
    committed = sorted((Path(__file__).parents[1] / "leaderboards" / "split-mnist" / "records").glob("*.json"))[0]
    unaudited_copy(committed, tmp_path)  # as records were before the audit existed
    (tmp_path / record_file.name).write_text(record_file.read_text())
    code, out, err = cli("leaderboard", tmp_path, "--strict", "--format", "csv")
    assert code == 0 and "--strict: left out 1 of 2 record(s) without an audit block" in err
    assert "l2-anchor" in out and "smnist-5" not in out
    code, out, _ = cli("leaderboard", tmp_path, "--format", "csv")
    assert code == 0 and "l2-anchor" in out and "smnist-5" in out


# --- checkpoints are checked before a run resumes from them ----------------------------------

def _checkpointed(folder: Path, data_root: Path) -> tuple[RunRequest, Path]:
    registered = get_registry().get("l2-anchor")
    protocol = apply_overrides(get_protocol("smoke"), SMALL)
    request = RunRequest(protocol, registered, registered.method.hyperparameters(), 0, data_root,
                         checkpoint_dir=folder)
    import dataclasses

    with pytest.raises(_Interrupted):
        run(dataclasses.replace(request, observers=[_Interrupter(2)]))
    return request, ckpt.checkpoint_path(folder, request.run_id)


@pytest.mark.parametrize("edit, reason", [
    (lambda p: p["progress"]["accuracy_matrix"][0].__setitem__(0, 1.5), "accuracy_matrix holds a value"),
    (lambda p: p["progress"]["samples_trained"].__setitem__(0, -1), "samples_trained"),
    (lambda p: p["audit"]["phases"][0].update(steps=10**6), "audit phase 0: steps 1000000 is out of range"),
    (lambda p: p.update(elapsed_s=float("nan")), "a time is negative, non-finite or missing"),
])
def test_an_edited_checkpoint_is_not_resumed(tmp_path, data_root, edit, reason):
    import dataclasses

    request, path = _checkpointed(tmp_path, data_root)
    payload = torch.load(path, weights_only=True)
    edit(payload)
    ckpt.save_checkpoint(path, payload)
    notes: list[str] = []
    watcher = _Interrupter(None)
    record = run(dataclasses.replace(request, notify=notes.append, observers=[watcher]))
    assert watcher.phases == [0, 1, 2]  # started over
    assert any("invalid checkpoint" in note and reason in note for note in notes), notes
    assert record.audit.phases[0].steps <= record.audit.phases[0].step_limit


def test_an_untouched_checkpoint_resumes_with_the_same_audit(tmp_path, data_root):
    import dataclasses

    request, _ = _checkpointed(tmp_path, data_root)
    notes: list[str] = []
    watcher = _Interrupter(None)
    resumed = run(dataclasses.replace(request, notify=notes.append, observers=[watcher]))
    assert watcher.phases == [2] and any("resuming" in note for note in notes)
    uninterrupted = run(dataclasses.replace(request, checkpoint_dir=None))
    assert resumed.audit == uninterrupted.audit
    assert resumed.accuracy_matrix == uninterrupted.accuracy_matrix


def test_verify_bad_input_is_exit_2_before_any_rerun(cli, record_file, tmp_path):
    code, _, err = cli("verify", record_file, "--data-root", tmp_path / "missing")
    assert code == 2 and "does not exist" in err
    (tmp_path / "not-a-record.json").write_text("{}")
    code, _, err = cli("verify", tmp_path / "not-a-record.json")
    assert code == 2 and err.startswith("clbench: error: invalid record")
    code, _, err = cli("verify", tmp_path / "nothing-here")
    assert code == 2
