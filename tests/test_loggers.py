"""`clbench evaluate --log`: one real smoke run logged to TensorBoard, CSV and W&B (offline),
each read back with the library's own reader and compared with the run's record."""

from __future__ import annotations

import glob
import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clbench.cli import main
from clbench.records import read_record


def _real_wandb() -> str | None:
    """Why W&B cannot be tested here, or None when the real package is importable."""
    try:
        import wandb
    except ImportError as exc:
        return f"wandb is not installed ({exc}); pip install 'clbench[wandb]'"
    if not callable(getattr(wandb, "init", None)) or not getattr(wandb, "__version__", None):
        return "the installed wandb is a stub without wandb.init"
    return None


WANDB_MISSING = _real_wandb()


@pytest.fixture(scope="module")
def logged(tmp_path_factory, data_root):
    """(folder, record) of `clbench evaluate naive -p smoke --seeds 0 --log ...` with every backend."""
    root = tmp_path_factory.mktemp("logged")
    args = ["evaluate", "naive", "--protocol", "smoke", "--seeds", "0", "--data-root", str(data_root),
            "--out", str(root / "records"), "-q",
            "--log", f"tensorboard:{root / 'tb'}", "--log", f"csv:{root / 'csv'}"]
    with pytest.MonkeyPatch.context() as env:
        if WANDB_MISSING is None:
            args += ["--log", "wandb:clbench-test"]
            env.setenv("WANDB_MODE", "offline")  # never the network, no account
            env.setenv("WANDB_DIR", str(root))
            env.setenv("WANDB_SILENT", "true")
        assert main(args) == 0
    [path] = (root / "records").glob("*.json")
    return root, read_record(path)


def run_folder(root: Path, backend: str, record) -> Path:
    [folder] = (root / backend).iterdir()
    assert folder.name == f"smoke__naive__seed0__{record.run_id[:10]}"  # named like the record
    return folder


def test_tensorboard_event_files_hold_the_accuracy_matrix(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, record = logged
    events = EventAccumulator(str(run_folder(root, "tb", record)))
    events.Reload()
    T = len(record.accuracy_matrix)
    logged_matrix = [[None] * T for _ in range(T)]
    for task in range(T):
        for event in events.Scalars(f"accuracy/task_{task}"):
            logged_matrix[event.step][task] = event.value
    np.testing.assert_allclose(logged_matrix, record.accuracy_matrix, atol=1e-6)  # float32 in the file
    seen = [e.value for e in events.Scalars("accuracy/seen_mean")]
    assert seen == pytest.approx([sum(row[: i + 1]) / (i + 1) for i, row in enumerate(record.accuracy_matrix)],
                                 abs=1e-6)
    for curve in record.learning_curves:
        points = events.Scalars(f"learning_curve/phase_{curve.phase}")
        assert [p.step for p in points] == curve.samples
        assert [p.value for p in points] == pytest.approx(curve.accuracy, abs=1e-6)
    assert events.Scalars("metrics/acc")[0].value == pytest.approx(record.metrics.acc, abs=1e-6)
    assert events.Scalars("metrics/ff_auc")[0].value == pytest.approx(record.metrics.ff_auc, abs=1e-6)


def test_csv_logs_are_long_form_tables(logged):
    root, record = logged
    folder = run_folder(root, "csv", record)
    accuracy = pd.read_csv(folder / "accuracy.csv").pivot(index="phase", columns="task", values="accuracy")
    np.testing.assert_allclose(accuracy.to_numpy(), record.accuracy_matrix, atol=1e-12)
    curves = pd.read_csv(folder / "learning_curves.csv")
    for curve in record.learning_curves:
        rows = curves[curves.phase == curve.phase]
        assert rows.samples.tolist() == curve.samples
        assert rows.accuracy.tolist() == pytest.approx(curve.accuracy, abs=1e-12)
    metrics = dict(pd.read_csv(folder / "metrics.csv").itertuples(index=False))
    assert metrics["acc"] == pytest.approx(record.metrics.acc, abs=1e-12)
    assert set(metrics) == {"acc", "bwt", "forgetting", "fwt", "learning_accuracy", "ff_auc"}
    assert not list(folder.glob(".*"))  # written atomically: no temporary files left


def read_wandb_log(path: Path) -> list:
    """The records of a W&B transaction log (.wandb): LevelDB-style 32 KiB blocks of
    length-prefixed chunks after a 7-byte header, each record a protobuf `Record`."""
    from wandb.proto import wandb_internal_pb2

    raw, block, pos, chunk, records = path.read_bytes(), 32768, 7, b"", []
    assert raw[:4] == b":W&B"
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        chunk, pos = chunk + raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def key(item) -> str:
    """A logged item's name (W&B stores names with a '/' as a nested key)."""
    return item.key or "/".join(item.nested_key)


@pytest.mark.skipif(WANDB_MISSING is not None, reason=str(WANDB_MISSING))
def test_wandb_offline_run_holds_rows_tables_and_metrics(logged):
    root, record = logged
    [log] = glob.glob(str(root / "wandb" / "offline-run-*" / "run-*.wandb"))
    entries = read_wandb_log(Path(log))
    [run] = [e.run for e in entries if e.WhichOneof("record_type") == "run"]
    assert run.display_name == f"smoke__naive__seed0__{record.run_id[:10]}"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["run_id"] == record.run_id and config["setup_hash"] == record.setup_hash
    history = [{key(item): json.loads(item.value_json) for item in e.history.item}
               for e in entries if e.WhichOneof("record_type") == "history"]
    rows = {h["_step"]: [h[f"accuracy/task_{j}"] for j in range(3)] for h in history}
    np.testing.assert_allclose([rows[i] for i in range(3)], record.accuracy_matrix, atol=1e-12)
    summary = {key(item): json.loads(item.value_json) for e in entries
               if e.WhichOneof("record_type") == "summary" for item in e.summary.update}
    assert summary["metrics/acc"] == pytest.approx(record.metrics.acc, abs=1e-12)
    [table] = glob.glob(str(Path(log).parent / "files" / "media" / "table" / "accuracy_matrix_*.table.json"))
    data = json.loads(Path(table).read_text())["data"]
    np.testing.assert_allclose([row[1:] for row in data], record.accuracy_matrix, atol=1e-12)
    [curves] = glob.glob(str(Path(log).parent / "files" / "media" / "table" / "learning_curves_*.table.json"))
    points = json.loads(Path(curves).read_text())["data"]
    assert [p[1] for p in points if p[0] == 2] == record.learning_curves[2].samples


@pytest.mark.parametrize("spec, needle", [
    ("mlflow:runs", "unknown --log target 'mlflow:runs'"),
    ("tensorboard", "--log tensorboard needs a folder"),
    ("csv:", "--log csv needs a folder"),
])
def test_bad_log_targets_fail_before_anything_is_written(cli, tmp_path, spec, needle):
    code, out, err = cli("evaluate", "naive", "-p", "smoke", "--out", tmp_path / "out", "--log", spec)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "out").exists()


def test_unwritable_log_folder_is_one_line(cli, tmp_path, data_root):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = cli("evaluate", "naive", "-p", "smoke", "--data-root", data_root,
                         "--out", tmp_path / "out", "--log", f"csv:{blocker}")
    assert code == 2 and err.count("\n") == 1 and "not writable" in err, err
    assert not list((tmp_path / "out").glob("*.json"))
