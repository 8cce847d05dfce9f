"""How data crosses the process boundary: phase tensors and model states travel as raw bytes
after their message (clbench.isolation), and must arrive bit for bit. A method process that
breaks the stream gets a fresh harness process, never a desynchronised one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from clbench import isolation
from clbench.evaluation import TaskEvaluator
from clbench.models import build_model
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.tasks import load_tasks, phase_data

SMALL = ["benchmark.n_tasks=3", "benchmark.train_samples_per_task=3000", "benchmark.test_samples_per_task=500",
         "evaluation.curve_test_samples=100"]


@pytest.fixture()
def protocol():
    # power-law: every phase after the first mixes rehearsed samples of older tasks in
    return apply_overrides(get_protocol("pmnist-10"), SMALL)


def _session(protocol, data_root, model):
    return isolation.HarnessSession(protocol, Path(data_root), 0, torch.device("cpu"), 0, model)


def _in_process(protocol, tasks) -> TaskEvaluator:
    """The scores an in-process harness would give, to compare the isolated ones with."""
    return TaskEvaluator(tasks, protocol.evaluation.batch_size, torch.device("cpu"),
                         protocol.evaluation.curve_test_samples, task_aware=False)


def test_phase_data_and_scores_arrive_bit_for_bit(protocol, data_root):
    torch.manual_seed(0)
    model = build_model(protocol.model, protocol.benchmark)
    tasks = load_tasks(protocol.benchmark, Path(data_root), 0)
    local = _in_process(protocol, tasks)
    session = _session(protocol, data_root, model)
    try:
        assert session.score_all(model) == local.all_tasks(model)  # the model state, as raw bytes
        matrix = protocol.env_matrix(0)
        for phase in range(protocol.benchmark.n_tasks):
            got = session.phase(phase)
            expected = phase_data(tasks, matrix[phase], phase, 0)
            assert got.x.nbytes > isolation._RAW_MIN_BYTES  # large enough to travel raw
            for name in ("x", "y", "origin"):
                a, b = getattr(got, name), getattr(expected, name)
                assert a.dtype == b.dtype and torch.equal(a, b), name
            assert got.counts == expected.counts
            with torch.no_grad():  # a trained-looking model: every parameter changes
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.01)
            assert session.curve_point(model, phase) == local.curve_point(model, phase)
            assert session.score_all(model) == local.all_tasks(model)
    finally:
        session.close()


def test_a_model_in_another_dtype_takes_the_checked_pickled_path(protocol, data_root):
    torch.manual_seed(0)
    model = build_model(protocol.model, protocol.benchmark)
    session = _session(protocol, data_root, model)
    try:
        sent, raw = session._model(model.double())
        assert sent["kind"] == "state_dict" and raw == []
        sent, raw = session._model(model.float())
        assert sent["kind"] == "raw_state" and len(raw) == len(model.state_dict())
        # converted back to the protocol's float32 by load_state_dict: the same scores
        local = _in_process(protocol, load_tasks(protocol.benchmark, Path(data_root), 0))
        assert session.score_all(model.double()) == pytest.approx(local.all_tasks(model.float()), abs=0.002)
    finally:
        session.close()


@pytest.mark.parametrize("layout", [
    {"keys": ["w"], "shapes": [[4]], "dtypes": ["complex64"]},  # a dtype it does not take raw
    {"keys": ["w", "b"], "shapes": [[4]], "dtypes": ["float32"]},  # lengths disagree
    {"keys": ["w"], "shapes": [[1 << 40]], "dtypes": ["float32"]},  # 4 TiB announced
])
def test_a_broken_raw_stream_ends_that_harness_process_and_the_next_request_gets_a_fresh_one(layout):
    client = isolation.harness()
    with pytest.raises(isolation.HarnessProcessFailure, match="could not be read"):
        client.request({"op": "curve", "task": 0, "model": {"kind": "raw_state", **layout}})
    deadline = time.monotonic() + 10
    while client.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.alive  # it stopped reading: the bytes after the message cannot be trusted
    fresh = isolation.harness()
    assert fresh is not client and fresh.request({"op": "ping"}) is None


def test_the_cost_table_in_the_docs_quotes_the_committed_measurement():
    """docs/trust.md's isolation cost table: every figure is in the benchmark's output file."""
    import re

    root = Path(__file__).resolve().parent.parent
    docs = (root / "docs" / "trust.md").read_text()
    table = docs[docs.index("**What it costs.**"):docs.index("Accuracies, curves and audit counts")]
    measured = (root / "benchmarks" / "results" / "isolation" / "pmnist-10.txt").read_text()
    figures = re.findall(r"\d+\.\d+", table)
    assert len(figures) >= 12
    assert [f for f in figures if f not in measured] == []


@pytest.mark.parametrize("memfd", [True, False])
def test_both_transports_hand_over_the_exact_tensors(monkeypatch, memfd):
    """The memfd hand-over (Linux) and the raw-bytes fallback (elsewhere), end to end over a
    socket pair: large tensors leave through their transport, small values stay in the message."""
    import socket
    import threading

    if memfd and not isolation._MEMFD:
        pytest.skip("no memfd on this system")
    monkeypatch.setattr(isolation, "_MEMFD", memfd)
    ours, theirs = socket.socketpair()
    shared = isolation._SharedMemory()
    x = shared.empty((5000, 784), torch.float32)  # allocated where phase_data puts it
    x.copy_(torch.randn(5000, 784))
    halves = torch.randn(300, 300).to(torch.bfloat16)  # not in shared memory: copied on the way
    value = (x, torch.arange(3), halves, [1, 2])
    message, raw = isolation._split_raw(value)
    assert [item["via"] for item in message if isinstance(item, dict)] == ["memfd" if memfd else "bytes"] * 2
    sender = threading.Thread(target=isolation._send_announced, args=(theirs, raw, shared))
    sender.start()
    got = isolation._join_raw(message, ours)
    sender.join()
    shared.close()
    assert torch.equal(got[0], x) and torch.equal(got[1], torch.arange(3))
    assert got[2].dtype == torch.bfloat16 and torch.equal(got[2], halves) and got[3] == [1, 2]
    ours.close()
    theirs.close()
