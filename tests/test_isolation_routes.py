"""Every route to the test data that a method's code could take, tried for real.

The attacks (tests/attackers.py) run in a fresh interpreter through `clbench.runner.run`,
so nothing this test process loaded can be mistaken for a leak:

- memory: every gc-tracked object, every calling stack frame, the globals of every
  clbench module (e.g. the probe's measuring callback), searched for the run's test images
  (by row digest), its test label vectors and the raw MNIST test set;
- disk: the MNIST test-label file under the data root, with and without `--sandbox`;
- oracle: asking the harness process for more accuracy measurements than the protocol's
  schedule holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.sandbox import landlock_abi
from clbench.tasks import load_tasks

TESTS = Path(__file__).resolve().parent
OVERRIDES = ["training.epochs=1", "benchmark.train_samples_per_task=500", "benchmark.n_tasks=2"]
PROTOCOL = apply_overrides(get_protocol("smoke"), OVERRIDES)

SCRIPT = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
data_root = Path({data_root!r})
if os.environ.get("ATTACK_SANDBOX"):
    from clbench import sandbox
    sandbox.enter(data_root, [])
from clbench import plugins as plugins_module
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.runner import RunRequest, run
import attackers
registry = plugins_module.load_registry({{"attackers": attackers.Attackers}})
plugins_module._REGISTRY = registry
method = registry.get({method!r})
protocol = apply_overrides(get_protocol("smoke"), {overrides!r})
try:
    record = run(RunRequest(protocol, method, method.method.parse_hyperparameters({{}}), 0, data_root))
    print("RESULT completed", record.metrics.acc)
except Exception as exc:
    print("RESULT failed", type(exc).__name__, str(exc).splitlines()[0])
if os.environ.get("ATTACK_CONTROL"):
    # positive control: the same walk, after this process loaded the test sets itself
    from clbench.tasks import load_tasks
    tasks = load_tasks(protocol.benchmark, data_root, 0)
    loot = attackers.Loot(json.load(open(os.environ["ATTACK_TARGETS"])))
    attackers.walk_everything(loot)
    print("CONTROL", json.dumps({{"found_test_rows": loot.found_test_rows,
                                  "found_test_labels": loot.found_test_labels}}))
"""


def _attack(tmp_path, data_root, method: str, **env) -> tuple[str, dict, str]:
    report = tmp_path / f"{method}.json"
    script = SCRIPT.format(tests=str(TESTS), data_root=str(data_root), method=method, overrides=OVERRIDES)
    environment = {**os.environ, "ATTACK_REPORT": str(report), "ATTACK_DATA_ROOT": str(data_root), **env}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=environment, timeout=300, cwd=tmp_path)
    result = next((line for line in done.stdout.splitlines() if line.startswith("RESULT")), "")
    assert result, done.stdout + done.stderr
    found = json.loads(report.read_text()) if report.exists() else {}
    return result, found, done.stdout


@pytest.fixture(scope="module")
def targets(tmp_path_factory, data_root) -> Path:
    from attackers import label_digest, row_digests

    tasks = load_tasks(PROTOCOL.benchmark, data_root, seed=0)
    data = {
        "test_rows": sorted(set().union(*(row_digests(t.test_x) for t in tasks))),
        "test_labels": [label_digest(t.test_y) for t in tasks],
        "train_rows": sorted(set().union(*(row_digests(t.train_x) for t in tasks))),
    }
    path = tmp_path_factory.mktemp("targets") / "targets.json"
    path.write_text(json.dumps(data))
    return path


def test_memory_routes_find_no_test_data_in_the_method_process(tmp_path, data_root, targets):
    result, loot, stdout = _attack(tmp_path, data_root, "memory-thief",
                                   ATTACK_TARGETS=str(targets), ATTACK_CONTROL="1")
    assert result.startswith("RESULT completed")
    assert loot["tensors"] > 10  # the walk really went through the process
    assert loot["found_train_rows"] > 0  # it sees the training data it was handed...
    assert loot["found_test_rows"] == 0  # ...but no test image,
    assert loot["found_test_labels"] == 0  # no test label vector,
    assert loot["raw_test_sets"] == 0  # and not the raw MNIST test set
    control = json.loads(next(line for line in stdout.splitlines() if line.startswith("CONTROL"))[8:])
    assert control["found_test_rows"] > 0 and control["found_test_labels"] > 0  # the walk can find them


def test_disk_route_is_open_without_the_sandbox(tmp_path, data_root):
    result, found, _ = _attack(tmp_path, data_root, "disk-thief")
    assert result.startswith("RESULT completed")
    assert found["outcome"] == "read 10008 bytes"  # documented in docs/trust.md


@pytest.mark.skipif(landlock_abi() < 1, reason="the kernel offers no Landlock")
def test_sandbox_denies_the_data_root_to_the_method(tmp_path, data_root):
    result, found, _ = _attack(tmp_path, data_root, "disk-thief", ATTACK_SANDBOX="1")
    assert found["outcome"] == "denied: PermissionError"
    assert result.startswith("RESULT completed")  # the harness process still reads the data


@pytest.mark.skipif(landlock_abi() < 1, reason="the kernel offers no Landlock")
def test_a_suite_runs_in_the_sandbox_with_the_local_executor_only(tmp_path, data_root):
    base = [sys.executable, "-m", "clbench", "suite", "smoke-environments", "--seeds", "0", "--sandbox",
            "--data-root", str(data_root), "--out", str(tmp_path / "out")]
    refused = subprocess.run([*base, "--executor", "process"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--executor local only" in refused.stderr
    done = subprocess.run(base, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr  # the harness process still reads the data
    assert len(list((tmp_path / "out").glob("*.json"))) == 3


def test_the_harness_answers_only_the_protocols_schedule(tmp_path, data_root):
    result, _, _ = _attack(tmp_path, data_root, "oracle-abuser")
    assert result.startswith("RESULT failed IsolationRefused")
    assert "learning-curve points in phase 0" in result


def test_the_harness_process_dies_with_its_parent(tmp_path):
    script = ("from clbench.isolation import harness; import time, sys; "
              "print(harness()._process.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status
