"""clbench.load_records / leaderboard_frame: the committed records as DataFrames, checked
against the committed leaderboards they were published in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import clbench
from clbench.errors import ClbenchError
from clbench.leaderboard import read_records, render
from clbench.metrics import METRIC_LABELS
from legacy import unaudited_copy

REPO = Path(__file__).resolve().parents[1]
SPLIT = REPO / "leaderboards" / "split-mnist"
ENVIRONMENTS = REPO / "leaderboards" / "paper-environments"


@pytest.fixture(scope="module")
def split_runs() -> pd.DataFrame:
    return clbench.load_records([SPLIT / "records"])


def test_one_tidy_row_per_record(split_runs):
    files = sorted((SPLIT / "records").glob("*.json"))
    assert len(split_runs) == len(files) and split_runs.run_id.is_unique
    for column in ["protocol", "protocol_version", "protocol_hash", "setup_hash", "environment",
                   "environment_kind", "method", "plugin", "plugin_version", "hyperparameters", "seed",
                   *METRIC_LABELS, "ff_auc_slope", "exemplars", "wall_time_s", "train_s", "eval_s"]:
        assert column in split_runs.columns, column
    assert set(split_runs.setup_hash) == {"c134c175149dfd68a1f7ddae0924c7890b1262bed217c0598bebfaedca95033c"}
    assert set(split_runs.environment_kind) == {"sequential"} and set(split_runs.protocol) == {"smnist-5"}
    assert set(split_runs.setup_changes) == {""}  # the preset's own setup
    # hyperparameters flattened: a column per name, NaN for methods without it
    replay = split_runs[split_runs.method == "replay"]
    assert set(replay["hp.mem_size"]) == {200} and split_runs[split_runs.method == "naive"]["hp.mem_size"].isna().all()
    gem = split_runs[split_runs.method == "gem"].iloc[0]
    assert (gem["hp.memory_strength"], gem["hp.patterns_per_exp"]) == (0.5, 256)
    # every committed record carries the harness's audit and where its hyperparameters came from
    assert split_runs["audit.steps"].notna().all() and set(split_runs.hp_source) == {"default"}
    record = read_records([files[0]])[0]
    row = split_runs.set_index("run_id").loc[record.run_id]
    assert row.acc == record.metrics.acc and row.seed == record.seed
    assert row.train_s == pytest.approx(sum(t.train_s for t in record.phase_timings))


def test_setup_changes_name_the_overrides_of_the_preset():
    """paper-robustness varies pmnist-10's setup with --set: each record names its changes."""
    runs = clbench.load_records([REPO / "leaderboards" / "paper-robustness" / "records"])
    base = "benchmark.train_samples_per_task=10000, training.epochs=1"
    assert dict(runs.groupby("setup_changes").size()) == {
        base: 39,  # 27 + the 12 made with benchmark.n_tasks=10, pmnist-10's own count: no change
        f"benchmark.n_tasks=20, {base}": 12, f"benchmark.n_tasks=5, {base}": 12,
        f"benchmark.train_samples_per_task=10000, model.hidden=[100,100], training.epochs=1": 12,
        f"benchmark.train_samples_per_task=10000, model.hidden=[1000,1000], training.epochs=1": 12}
    assert runs.groupby("setup_hash").setup_changes.nunique().eq(1).all()
    # the heading docs/protocols.md quotes is the committed table's
    docs = " ".join((REPO / "docs" / "protocols.md").read_text().split())
    quoted = re.search(r"e\.g\. `(pmnist-10 v1 with [^`]+)`", docs).group(1)
    board = (REPO / "leaderboards" / "paper-robustness" / "leaderboard.md").read_text()
    assert f"### Leaderboard: {quoted} (setup hash" in board


def test_order_and_input_kind_do_not_matter(split_runs):
    records = read_records([SPLIT / "records"])
    pd.testing.assert_frame_equal(clbench.records_frame(records[::-1]), split_runs)
    pd.testing.assert_frame_equal(clbench.load_records(records[:5]), clbench.records_frame(records[:5]))


def _published_acc_means(markdown: str) -> dict[str, float]:
    """method -> the ACC mean a committed leaderboard.md shows (its cells are 'mean ± std [ci]')."""
    means = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 12 and cells[0].isdigit():
            means[cells[1]] = float(re.match(r"\**(-?[\d.]+)", cells[6]).group(1))
    return means


def test_the_published_split_mnist_means_are_reproduced(split_runs):
    published = _published_acc_means((SPLIT / "leaderboard.md").read_text())
    assert len(published) == split_runs.method.nunique() == 13
    mine = split_runs.groupby("method")["acc"].mean().mul(100).round(2).to_dict()
    assert mine == published


def test_leaderboard_frame_is_the_committed_table():
    runs = clbench.load_records([ENVIRONMENTS / "records"])
    board = clbench.leaderboard_frame(runs)
    assert render(board, "md") == (ENVIRONMENTS / "leaderboard.md").read_text()
    csv = pd.read_csv(ENVIRONMENTS / "leaderboard.csv")
    assert list(csv.method) == list(board.method)
    for key in METRIC_LABELS:
        assert (board[f"{key}_mean"] - csv[f"{key}_mean"]).abs().max() < 1e-9
    # the same table from records or from paths
    pd.testing.assert_frame_equal(clbench.leaderboard_frame([ENVIRONMENTS / "records"]), board)


def test_audit_blocks_become_columns(tmp_path):
    files = sorted((SPLIT / "records").glob("*.json"))[:2]
    records = read_records(files)
    runs = clbench.load_records(files)
    for i, record in enumerate(records):
        row = runs.set_index("run_id").loc[record.run_id]
        assert row["audit.steps"] == record.audit.steps
        assert row["audit.stored_samples"] == record.audit.stored_samples
    assert "audit.phases" not in runs.columns  # per-phase lists stay in the record
    older = unaudited_copy(files[0], tmp_path / "older")
    mixed = clbench.load_records([older, files[1]])
    assert mixed["audit.steps"].notna().sum() == 1  # a record without an audit: NaN
    assert sorted(mixed.hp_source) == ["default", "unrecorded"]


def test_bad_inputs_are_clbench_errors(tmp_path):
    with pytest.raises(ClbenchError, match="no such record file"):
        clbench.load_records([tmp_path / "missing"])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ClbenchError, match="invalid record"):
        clbench.load_records([tmp_path])


def test_importing_clbench_loads_no_pandas_until_asked():
    code = ("import sys, clbench; before = {m for m in ('pandas', 'torch') if m in sys.modules}; "
            "clbench.load_records; print(sorted(before), 'pandas' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True", "False"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        clbench.nope  # noqa: B018
