"""Per-phase checkpoints: a killed run continues from its last finished phase, same record.

Every baseline that declares checkpointing is resumed by `check_method` in
tests/test_baselines.py; here: the mechanism itself, a real SIGKILL of `clbench
evaluate`, what makes a checkpoint unusable, and that checkpoints never unpickle.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import clbench.plugins as plugins_module
from clbench import STATELESS, Method, hookimpl
from clbench.checkpoint import FOLDER, checkpoint_path, load_checkpoint, save_checkpoint, stamp
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.records import read_record
from clbench.runner import RunRequest, run
from clbench.testing import _Interrupted, _Interrupter, resume_matches, resumed_differences

SMOKE = get_protocol("smoke")


def _request(data_root, method="naive", **changes) -> RunRequest:
    registered = get_registry().get(method)
    request = RunRequest(SMOKE, registered, registered.method.hyperparameters(), 0, data_root)
    return dataclasses.replace(request, **changes)


def _same(a, b) -> bool:
    return not resumed_differences(a, b)


@pytest.fixture(scope="module")
def uninterrupted(data_root):
    return run(_request(data_root))


def test_resuming_after_each_phase_gives_the_uninterrupted_record(data_root, uninterrupted):
    for phase in (1, 2):
        ok, detail = resume_matches(_request(data_root), phase, uninterrupted)
        assert ok, detail


def test_the_check_notices_a_method_whose_state_is_not_saved(data_root, monkeypatch):
    """EWC declared STATELESS loses its Fisher penalty on resume, and the check says so."""
    from clbench_baselines.regularisation import make_ewc

    class Forgetful:
        @hookimpl
        def clbench_register_methods(register):
            from clbench_baselines.regularisation import EWCHyperparameters
            register(Method(name="ewc-forgetful", factory=make_ewc,
                            hyperparameters=EWCHyperparameters, checkpointing=STATELESS))

    monkeypatch.setattr(plugins_module, "_REGISTRY", plugins_module.load_registry({"f": Forgetful}))
    request = _request(data_root, "ewc-forgetful")
    ok, detail = resume_matches(request, 2, run(request))
    assert not ok and "accuracy_matrix" in detail


def test_unusable_checkpoints_are_ignored_and_the_run_starts_over(data_root, uninterrupted, tmp_path):
    request = _request(data_root, checkpoint_dir=tmp_path)
    path = checkpoint_path(tmp_path, request.run_id)
    path.write_bytes(b"not a checkpoint")  # e.g. a disk that lost the file's end
    notes = []
    record = run(dataclasses.replace(request, notify=notes.append))
    assert _same(record, uninterrupted)
    assert notes == [f"ignoring {path.name}: unreadable checkpoint (UnpicklingError); "
                     "starting from the first phase"]


def test_a_checkpoint_that_does_not_fit_the_strategy_is_dropped_cleanly(data_root, uninterrupted, tmp_path):
    """Readable, right run and stamp, but a model of another shape: start over from the seed."""
    request = _request(data_root, checkpoint_dir=tmp_path)
    path = checkpoint_path(tmp_path, request.run_id)
    with pytest.raises(_Interrupted):
        run(dataclasses.replace(request, observers=[_Interrupter(2)]))
    payload = torch.load(path, weights_only=True)
    payload["model"] = {name: torch.zeros(3) for name in payload["model"]}
    save_checkpoint(path, payload)
    notes = []
    record = run(dataclasses.replace(request, notify=notes.append))
    assert _same(record, uninterrupted)
    assert notes == [f"ignoring {path.name}: it does not fit this run (RuntimeError); "
                     "starting from the first phase"]


def test_a_checkpoint_from_another_version_or_device_is_not_used(data_root, tmp_path):
    request = _request(data_root, checkpoint_dir=tmp_path)
    current = stamp("naive", request.method.version, "cpu")
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, {"run_id": request.run_id, "stamp": {**current, "clbench": "0.0.1"}})
    assert load_checkpoint(path, request.run_id, current) == (
        None, "checkpoint from another clbench, method version or device")
    assert load_checkpoint(path, "other-run", current)[1] == "checkpoint of another run"
    save_checkpoint(path, {"run_id": request.run_id, "stamp": current, "phases_done": 1})
    assert load_checkpoint(path, request.run_id, current)[0]["phases_done"] == 1


class _Payload:
    """Unpickling this would create a file: a checkpoint must never be able to run code."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_a_checkpoint_holding_objects_is_refused_without_running_them(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"run_id": "r", "stamp": {}, "model": _Payload(marker)}, path)
    payload, reason = load_checkpoint(path, "r", {})
    assert payload is None and reason.startswith("unreadable checkpoint")
    assert not marker.exists()
    with pytest.raises(TypeError, match="checkpoints hold only tensors"):
        save_checkpoint(tmp_path / "mine.ckpt", {"model": _Payload(marker)})
    assert not (tmp_path / "mine.ckpt").exists() and not list(tmp_path.glob("*.tmp"))


def test_a_method_whose_state_cannot_be_saved_gets_a_clear_error(data_root, tmp_path, monkeypatch):
    from clbench import Checkpointing
    from clbench.errors import ClbenchError

    def make(ctx, hp):
        from avalanche.training.supervised import Naive
        return Naive(**ctx.strategy_kwargs())

    class Leaky:
        @hookimpl
        def clbench_register_methods(register):
            register(Method(name="leaky", factory=make,
                            checkpointing=Checkpointing(save=lambda s: {"me": s},
                                                        load=lambda s, state: None)))

    monkeypatch.setattr(plugins_module, "_REGISTRY", plugins_module.load_registry({"l": Leaky}))
    with pytest.raises(ClbenchError, match=r"cannot checkpoint this method: .*\['me'\] is a"):
        run(_request(data_root, "leaky", checkpoint_dir=tmp_path))


def _evaluate(data_root, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "clbench", "evaluate", "naive", "--protocol", "smoke",
            "--set", "benchmark.n_tasks=4", "--seeds", "0", "--quiet", "--data-root", str(data_root),
            "--out", str(out), *extra]


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_record(data_root, tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    process = subprocess.Popen(_evaluate(data_root, killed), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    checkpoints = killed / FOLDER
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*.ckpt")) and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list(checkpoints.glob("*.ckpt")), "no checkpoint appeared before the run ended"
    assert not list(killed.glob("*.json"))  # killed before its record: nothing half-written

    resumed = subprocess.run(_evaluate(data_root, killed), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "seed 0: resuming from its checkpoint after phase" in resumed.stderr
    assert not checkpoints.exists()  # discarded once the record is written, folder too
    subprocess.run(_evaluate(data_root, clean), check=True, capture_output=True)
    [a], [b] = killed.glob("*.json"), clean.glob("*.json")
    assert _same(read_record(a), read_record(b))


def test_numpy_scalars_are_refused_when_saving_not_silently_lost_on_loading(tmp_path):
    import numpy as np

    with pytest.raises(TypeError, match=r"checkpoint\['loss'\] is a float64"):
        save_checkpoint(tmp_path / "c.ckpt", {"loss": np.float64(0.5)})


def test_every_baseline_but_icarl_and_the_example_declare_checkpointing():
    """Their resume is then verified by check_method in tests/test_baselines.py."""
    registry = get_registry()
    resumable = {name for name, m in registry.methods.items() if m.method.checkpointing is not None}
    shipped = {name for name, m in registry.methods.items()
               if m.plugin in ("clbench-baselines", "clbench-example")}
    assert shipped - resumable == {"icarl"}
