"""Failures of the machine, the data and the paths: classified, and caught before training.

Issue 12: a full disk, an out-of-memory error or corrupted labels are reported as such,
never as "<method> failed"; output paths that cannot exist are refused before any
compute; `CLBENCH_DATA_ROOT` is checked like `--data-root`; `--time-limit` is a positive
finite number; `evaluate` skips seeds whose valid record exists unless `--force`; a
record file is bounded in size before it is read; stale temporary files are removed.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from clbench import Method, hookimpl
from clbench import plugins as plugins_module
from clbench.errors import BadData, BadPath, DiskFull, HarnessFailure, OutOfMemory, classify
from clbench.records import MAX_RECORD_BYTES, read_record, write_atomic
from clbench.tmpfiles import host_tag, is_stale, remove_stale, tmp_prefix

QUICK = ["--set", "training.epochs=1", "--set", "benchmark.train_samples_per_task=300",
         "--set", "benchmark.test_samples_per_task=200", "--set", "evaluation.curve_test_samples=100",
         "--quiet"]
LONG = "x" * 300  # one path component longer than any filesystem's 255 bytes


def _one_line(code, out, err, expected_code=2):
    lines = err.strip().splitlines()
    assert code == expected_code and len(lines) == 1 and lines[0].startswith("clbench: error: "), (code, err)
    assert "Traceback" not in err
    return lines[0]


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ------------------------------------------------------------------ classification


def test_a_full_disk_is_reported_with_the_path_and_the_size(tmp_path, monkeypatch):
    """A real ENOSPC from the kernel: the temporary file's descriptor is /dev/full's."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    real_mkstemp = tempfile.mkstemp

    def full_disk(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    target = tmp_path / "record.json"
    with pytest.raises(DiskFull) as caught:
        write_atomic(target, "x" * 5000)
    message = str(caught.value)
    assert "disk full" in message and str(target) in message and "5,000 bytes" in message
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []  # neither the record nor its temporary file


def test_the_checkpoint_writer_reports_a_full_disk_too(tmp_path, monkeypatch):
    from clbench.checkpoint import save_checkpoint

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    real_mkstemp = tempfile.mkstemp

    def full_disk(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    path = tmp_path / "checkpoints" / ("a" * 20 + ".ckpt")
    with pytest.raises(DiskFull, match=r"disk full while writing checkpoint .*aaaa\.ckpt' \(3\.8 MB\)"):
        save_checkpoint(path, {"run_id": "a", "weights": torch.zeros(1_000_000)})
    assert os.listdir(path.parent) == []


def test_machine_failures_are_classified_and_method_failures_are_not():
    try:  # a real allocator failure: 40 TB
        torch.empty(10**13)
    except RuntimeError as exc:
        oom = classify(exc)
    assert isinstance(oom, OutOfMemory) and "tried to allocate 40000.0 GB" in str(oom)
    try:  # what cross-entropy says about a label outside the classes
        torch.nn.functional.cross_entropy(torch.zeros(2, 10), torch.tensor([1, 255]))
    except IndexError as exc:
        bad = classify(exc)
    assert isinstance(bad, BadData) and "Target 255 is out of bounds" in str(bad)
    assert isinstance(classify(MemoryError()), OutOfMemory)
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/x.json")
    assert isinstance(classify(full), DiskFull) and "/data/x.json" in str(classify(full))
    assert isinstance(classify(OSError(errno.ENAMETOOLONG, "File name too long", "a/b")), BadPath)
    wrapped = RuntimeError("worker failed")
    wrapped.__cause__ = MemoryError()
    assert isinstance(classify(wrapped), OutOfMemory)
    for method_bug in (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), ValueError("boom"),
                       IndexError("list index out of range"), OSError(errno.EACCES, "denied")):
        assert classify(method_bug) is None
    assert all(issubclass(kind, HarnessFailure) for kind in (DiskFull, OutOfMemory, BadData, BadPath))


class Greedy:
    """A method whose strategy asks the allocator for 40 TB."""

    @hookimpl
    def clbench_register_methods(register):
        def factory(ctx, hp):
            torch.empty(10**13)

        register(Method(name="greedy", factory=factory))


def test_out_of_memory_in_a_run_is_not_called_a_method_failure(cli, tmp_path, data_root, monkeypatch):
    monkeypatch.setattr(plugins_module, "_REGISTRY", plugins_module.load_registry({"greedy": Greedy}))
    code, _, err = cli("evaluate", "greedy", "--seeds", "0", *QUICK, "--data-root", data_root,
                       "--out", tmp_path / "out")
    lines = err.strip().splitlines()
    assert code == 1 and "Traceback" not in err
    assert lines[-1].startswith("clbench: error: seed 0: out of memory; tried to allocate 40000.0 GB")
    assert "a failure of the machine, not of greedy" in lines[-1] and "failed on seed" not in err
    assert list((tmp_path / "out").glob("*.json")) == []
    assert len(list((tmp_path / "out").glob("*.log"))) == 1  # the traceback is kept


def _corrupted_mnist(source: Path, root: Path) -> Path:
    """A copy of MNIST whose training labels are all 255 (images linked, not copied)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        os.symlink(source / "MNIST" / "raw" / name, raw / name)
    labels = (source / "MNIST" / "raw" / "train-labels-idx1-ubyte").read_bytes()
    (raw / "train-labels-idx1-ubyte").write_bytes(labels[:8] + bytes([255]) * (len(labels) - 8))
    return root


def test_corrupted_labels_are_reported_as_bad_data(tmp_path, data_root):
    corrupted = _corrupted_mnist(data_root, tmp_path / "corrupted")
    result = subprocess.run([sys.executable, "-m", "clbench", "evaluate", "naive", "--seeds", "0", *QUICK,
                             "--data-root", corrupted, "--out", tmp_path / "out"],
                            capture_output=True, text=True, timeout=600)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
    assert last.startswith("clbench: error: ") and "bad data" in last, last
    assert "failed on seed" not in last
    assert list((tmp_path / "out").glob("*.json")) == []


# ------------------------------------------------------------------ paths, before training


def test_paths_that_cannot_exist_are_refused_before_anything_runs(cli, tmp_path, data_root):
    deep = tmp_path.joinpath(*["d" * 200] * 21)  # components fit, the whole path does not (> 4096 bytes)
    cases = [
        (["evaluate", "naive", "--out", tmp_path / LONG, "--data-root", data_root], "is 300 bytes"),
        (["evaluate", "naive", "--out", deep, "--data-root", data_root], "paths must be shorter than 4096"),
        (["evaluate", "naive", "--data-root", tmp_path / LONG, "--out", tmp_path / "out"], "data root"),
        (["suite", "smoke-environments", "--out", tmp_path / LONG, "--data-root", data_root], "output folder"),
        (["suite", "smoke-environments", "--dry-run", "--out", tmp_path / LONG], "output folder"),
        (["leaderboard", tmp_path / LONG], "records path"),
        (["leaderboard", tmp_path, "--out", tmp_path / LONG / "board.md"], "output path"),
        (["plot", tmp_path, "--out", tmp_path / LONG], "output path"),
    ]
    for args, expected in cases:
        line = _one_line(*cli(*args))
        assert expected in line, line
        assert len(line) < 300  # the offending name is shortened in the message
    assert sorted(os.listdir(tmp_path)) == []  # nothing created, nothing trained


def test_record_names_of_every_run_are_checked_before_training(tmp_path):
    from clbench.preflight import check_run_outputs

    with pytest.raises(Exception, match="use a shorter protocol name"):
        check_run_outputs(tmp_path, ["p" * 240 + "__naive__seed0__0123456789.json"], "checkpoints")
    check_run_outputs(tmp_path, ["p" * 100 + "__naive__seed0__0123456789.json"], "checkpoints")
    assert os.listdir(tmp_path) == []


def test_temporary_names_fit_wherever_their_target_fits(tmp_path):
    target = tmp_path / ("n" * 250 + ".json")  # 255 bytes: the longest name allowed
    write_atomic(target, "{}")
    assert target.read_text() == "{}"
    prefix = tmp_prefix(target)
    assert len(prefix.encode()) + 8 + len(".tmp") <= 255
    stale = tmp_path / f"{prefix.replace(str(os.getpid()), str(_dead_pid()))}abcdefgh.tmp"
    stale.write_text("partial")
    assert is_stale(stale)  # a shortened name still reads as clbench's own


# ------------------------------------------------------------------ data root, time limit


def test_a_missing_data_root_from_the_environment_is_refused_at_once(cli, tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "data"
    monkeypatch.setenv("CLBENCH_DATA_ROOT", str(missing))
    for args in (["evaluate", "naive", "--out", tmp_path / "out"],
                 ["suite", "smoke-environments", "--out", tmp_path / "out"],
                 ["check-plugin", "naive"]):
        line = _one_line(*cli(*args))
        assert f"data root '{missing}' (from $CLBENCH_DATA_ROOT) does not exist" in line
    assert os.listdir(tmp_path) == []  # no folders created, no download attempted
    monkeypatch.setenv("CLBENCH_DATA_ROOT", str(tmp_path / LONG))
    assert "$CLBENCH_DATA_ROOT" in _one_line(*cli("evaluate", "naive", "--out", tmp_path / "out"))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1"])
def test_the_time_limit_must_be_a_positive_finite_number(cli, tmp_path, value):
    line = _one_line(*cli("suite", "smoke-environments", f"--time-limit={value}", "--out", tmp_path))
    assert "--time-limit must be a positive, finite number" in line
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ record size bound


def test_a_huge_record_file_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:  # sparse: 100 MB that take no disk
        handle.truncate(100 * 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(Exception, match=r"is 100 MiB; records are at most 64 MiB"):
            read_record(huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # refused from its size: nothing was read
    assert MAX_RECORD_BYTES == 64 * 2**20


# ------------------------------------------------------------------ evaluate: skip, --force, tidy


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}


def test_evaluate_skips_finished_seeds_unless_forced_and_tidies_leftovers(cli, tmp_path, data_root):
    out = tmp_path / "out"
    code, _, err = cli("evaluate", "naive", "--seeds", "0", *QUICK, "--data-root", data_root, "--out", out)
    assert code == 0, err
    [record] = out.glob("*.json")
    first = read_record(record)

    # leftovers of interrupted writes, by writers that are gone, and things that must stay
    dead = _dead_pid()
    checkpoints = out / "checkpoints"
    checkpoints.mkdir()
    leftovers = [out / f".{record.name}.{host_tag()}-{dead}-k2j3h4g5.tmp",
                 checkpoints / f".{first.run_id}.ckpt.{host_tag()}-{dead}-a1b2c3d4.tmp",
                 checkpoints / f"{first.run_id}.ckpt"]  # its record exists: a kill before the delete
    old_style = out / f".{record.name}.zz99yy88.tmp"
    kept = [out / f".{record.name}.{host_tag()}-{os.getppid()}-q1w2e3r4.tmp",  # its writer is alive
            out / f".{record.name}.ab12cd34.tmp",  # old naming, recent: perhaps being written
            out / ".notes.tmp", out / "mine.txt"]  # not clbench's
    for path in leftovers + kept + [old_style]:
        path.write_text("partial")
    os.utime(old_style, (time.time() - 7200, time.time() - 7200))

    code, stdout, err = cli("evaluate", "naive", "--seeds", "0", *QUICK, "--data-root", data_root, "--out", out)
    assert code == 0, err
    assert f"seed 0: skipped, its record is already in {record}" in err and "--force" in err
    assert "removed 4 leftover file(s)" in err
    assert "ACC" in stdout  # the table is printed from the existing record
    assert not any(p.exists() for p in leftovers + [old_style]) and all(p.exists() for p in kept)
    assert not checkpoints.exists()
    assert read_record(record).created_at == first.created_at  # not run again

    code, _, err = cli("evaluate", "naive", "--seeds", "0", "1", *QUICK, "--data-root", data_root,
                       "--out", out, "--force")
    assert code == 0 and "skipped" not in err
    records = {r.seed: r for r in map(read_record, out.glob("*.json"))}
    assert set(records) == {0, 1}
    assert records[0].accuracy_matrix == first.accuracy_matrix  # the same numbers, run again
    assert "seed 0: ACC" in err


def test_stale_temporary_files_only(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    stale = [tmp_path / f".r.json.{host_tag()}-{dead}-abcdefgh.tmp",
             tmp_path / f".r.failure.{host_tag()}-{dead}-abcdefgh.tmp",
             tmp_path / f".r.log.{host_tag()}-{dead}-abcdefgh.tmp"]
    fresh = [tmp_path / f".r.json.{host_tag()}-{alive}-abcdefgh.tmp",
             tmp_path / f".r.json.000000-{dead}-abcdefgh.tmp",  # another host's: only its age tells
             tmp_path / ".r.json.abcdefgh.tmp",
             tmp_path / f".r.txt.{host_tag()}-{dead}-abcdefgh.tmp",  # not a file clbench writes here
             tmp_path / "r.json"]
    for path in stale + fresh:
        path.write_text("x")
    assert sorted(remove_stale(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in fresh)
    old = time.time() - 7200
    os.utime(fresh[1], (old, old))
    os.utime(fresh[2], (old, old))
    assert sorted(remove_stale(tmp_path)) == sorted(fresh[1:3])


def test_a_write_killed_midway_leaves_a_temporary_file_the_next_run_removes(tmp_path):
    """SIGKILL inside the write window (fsync made slow), then the cleanup."""
    target = tmp_path / "smoke__naive__seed0__0123456789.json"
    code = ("import os, sys, time\n"
            "os.fsync = lambda fd: (print('writing', flush=True), time.sleep(60))\n"
            "from clbench.records import write_atomic\n"
            f"write_atomic({str(target)!r}, 'x' * 100000)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    [left] = [p for p in tmp_path.iterdir()]
    assert left.name.startswith(f".{target.name}.{host_tag()}-{writer.pid}-") and not target.exists()
    assert remove_stale(tmp_path) == [left] and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ disk full, end to end


def _unshare_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_available(), reason="needs unshare -rm and tmpfs (user namespaces)")
def test_a_full_disk_during_a_run_is_one_line_naming_the_checkpoint(tmp_path, data_root):
    """A real 64 KiB tmpfs as --out, mounted in a private mount namespace."""
    out = tmp_path / "out"
    out.mkdir()
    command = " ".join([f"mount -t tmpfs -o size=64k tmpfs {out} &&", sys.executable, "-m", "clbench",
                        "evaluate", "naive", "--seeds", "0", *QUICK, "--data-root", str(data_root),
                        "--out", str(out)])
    result = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True,
                            timeout=600)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith("clbench: error: disk full while writing checkpoint ")
    assert "/checkpoints/" in lines[-1] and " MB)" in lines[-1] and "naive failed" not in result.stderr
