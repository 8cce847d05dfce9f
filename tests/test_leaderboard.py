"""`clbench leaderboard`: aggregation, statistics and rendering, on hand-made records.

Every record here is built programmatically with known per-seed values, so the expected
means, standard deviations, confidence intervals and test outcomes are computed by hand.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from clbench import leaderboard as lb
from clbench.metrics import METRIC_FORMS, compute_metrics
from clbench.presets import PROTOCOLS
from clbench.protocol import apply_overrides
from clbench.records import RunRecord, run_id, write_record

SMOKE = PROTOCOLS["smoke"]
SMOKE_OTHER = apply_overrides(SMOKE, ["training.epochs=3"])  # same name, different hash
PMNIST = PROTOCOLS["pmnist-10"]
T_975_DF2 = 4.302652729749464  # t_{0.975, 2}; printed tables give 4.303


def make_record(acc: float, seed: int, method: str = "naive", hp: dict | None = None,
                protocol=SMOKE, exemplars: int = 0, forgetting: float = 0.05,
                clbench_version: str = "0.1.0") -> RunRecord:
    """A valid record whose ACC is `acc` and whose forgetting is `forgetting`.

    Before the last phase every trained task stands at acc + forgetting (untrained ones at
    0.1); the last phase leaves every task at acc. The metrics are computed from that matrix.
    """
    resolved = protocol.resolved()
    hp = hp or {}
    T = protocol.benchmark.n_tasks
    matrix = [[acc + forgetting if j <= i else 0.1 for j in range(T)] for i in range(T - 1)] + [[acc] * T]
    curves = [{"phase": p, "samples": [0, 100], "accuracy": [0.1, acc]} for p in range(T)]
    return RunRecord(
        run_id=run_id(resolved["hash"], method, hp, seed),
        protocol=resolved,
        method={"name": method, "plugin": "test-plugin", "version": "1.0", "hyperparameters": hp,
                "stored_exemplars": exemplars},
        seed=seed,
        environment_matrix=protocol.env_matrix(seed),
        accuracy_matrix=matrix,
        untrained_accuracy=[0.1] * T,
        learning_curves=curves,
        samples_trained=[100] * T,
        metrics=compute_metrics(matrix, [0.1] * T, curves, protocol.evaluation.facilitation_threshold),
        versions={"python": "3.11", "torch": "2", "torchvision": "0", "avalanche": "0.6",
                  "clbench": clbench_version},
        device="cpu",
        hardware={"platform": "test", "processor": "x", "cpu_count": 1, "torch_threads": 1},
        wall_time_s=1.0, setup_time_s=0.1, phase_times_s=[0.3] * T,
        phase_timings=[{"train_s": 0.2, "curve_eval_s": 0.05, "eval_s": 0.05}] * T,
        created_at="2026-01-01T00:00:00+00:00",
    )


def write_all(folder: Path, records) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for record in records:
        write_record(record, folder)
    return folder


# Known per-seed ACC values: a clear best, a near-tie, a clearly worse one and a single seed.
BEST = [0.90, 0.91, 0.92]
NEAR = [0.905, 0.905, 0.915]     # differences -0.005, 0.005, 0.005: t = 0.5
WORSE = [0.70, 0.72, 0.69]
HAND = [0.80, 0.82, 0.84]        # mean 0.82, std 0.02


def standard_records():
    records = []
    for name, hp, accs, exemplars in (("replay", {"mem_size": 200}, BEST, 200),
                                      ("near_tie", {}, NEAR, 0),
                                      ("worse", {"lambda": 1.0}, WORSE, 0),
                                      ("hand", {}, HAND, 0)):
        records += [make_record(a, seed, name, hp, exemplars=exemplars) for seed, a in enumerate(accs)]
    records.append(make_record(0.85, 0, "single"))
    return records


@pytest.fixture
def records_dir(tmp_path) -> Path:
    return write_all(tmp_path / "records", standard_records())


def board_of(records):
    board = lb.leaderboard_frame(records)
    assert board.setup_hash.nunique() == 1
    return board


def entry(board, method: str):
    return board[board.method == method].iloc[0]


# --------------------------------------------------------------------------- statistics


def test_mean_std_and_ci_match_hand_computation():
    board = board_of(standard_records())
    s = entry(board, "hand")
    half = T_975_DF2 * 0.02 / math.sqrt(3)
    assert s.acc_n == 3 and s.acc_values == pytest.approx(HAND, abs=1e-12)
    assert s.acc_mean == pytest.approx(0.82, abs=1e-12)
    assert s.acc_std == pytest.approx(0.02, abs=1e-12)
    assert s.acc_ci_low == pytest.approx(0.82 - half, abs=1e-12)
    assert s.acc_ci_high == pytest.approx(0.82 + half, abs=1e-12)
    assert (round(s.acc_ci_low * 100, 2), round(s.acc_ci_high * 100, 2)) == (77.03, 86.97)
    single = entry(board, "single")
    assert single.acc_mean == 0.85 and single.acc_n == 1
    assert math.isnan(single.acc_std) and math.isnan(single.acc_ci_low) and math.isnan(single.acc_ci_high)


def test_a_filtered_records_frame_gives_the_same_statistics():
    """leaderboard_frame takes clbench.load_records' DataFrame, filtered as a notebook would."""
    import clbench

    runs = clbench.records_frame(standard_records())
    kept = runs[runs.method.isin(["hand", "worse"])]
    board = lb.leaderboard_frame(kept)
    assert list(board.method) == ["hand", "worse"] and list(board["rank"]) == [1, 2]
    assert entry(board, "hand").acc_mean == pytest.approx(0.82, abs=1e-12)
    assert entry(board, "hand").significance == lb.REFERENCE


def test_t_distribution_values():
    assert lb.t_quantile(0.975, 2) == pytest.approx(T_975_DF2, rel=1e-12)
    assert lb.t_quantile(0.975, 30) == pytest.approx(2.0422724563012373, rel=1e-12)
    assert lb.t_two_sided_p(T_975_DF2, 2) == pytest.approx(0.05, rel=1e-10)


def test_paired_test_cases():
    stats = pytest.importorskip("scipy.stats")
    ref = dict(enumerate(BEST))
    near = lb.paired_test(ref, dict(enumerate(NEAR)))
    expected = stats.ttest_rel(BEST, NEAR)
    assert near.status == lb.NOT_SIGNIFICANT and near.shared_seeds == 3
    assert near.t == pytest.approx(0.5) == pytest.approx(expected.statistic)
    assert near.p_value == pytest.approx(expected.pvalue)
    worse = lb.paired_test(ref, dict(enumerate(WORSE)))
    assert worse.status == lb.SIGNIFICANT and worse.p_value < 0.05
    assert worse.p_value == pytest.approx(stats.ttest_rel(BEST, WORSE).pvalue)
    # identical on every shared seed: zero differences, explicitly "not significant"
    same = lb.paired_test(ref, dict(ref))
    assert (same.status, same.t, same.p_value) == (lb.NOT_SIGNIFICANT, 0.0, 1.0)
    # a constant non-zero difference has zero spread: infinitely significant
    shifted = lb.paired_test({0: 0.5, 1: 0.75}, {0: 0.25, 1: 0.5})
    assert (shifted.status, shifted.t, shifted.p_value) == (lb.SIGNIFICANT, None, 0.0)
    # fewer than two shared seeds: not testable
    assert lb.paired_test(ref, {0: 0.9, 7: 0.5}).status == lb.UNTESTABLE
    assert lb.paired_test(ref, {5: 0.9, 6: 0.91}).shared_seeds == 0


def test_ranks_marks_and_best_values():
    board = board_of(standard_records())
    assert list(board.method) == ["replay", "near_tie", "single", "hand", "worse"]
    assert list(board["rank"]) == [1, 2, 3, 4, 5]
    assert entry(board, "replay").significance == lb.REFERENCE
    assert entry(board, "near_tie").marked                     # tied-ish: marked
    assert not entry(board, "worse").marked                    # clearly worse: not marked
    assert entry(board, "worse").significance == lb.SIGNIFICANT
    assert entry(board, "single").significance == lb.UNTESTABLE
    assert not entry(board, "single").marked                   # one seed is never marked
    assert entry(board, "hand").significance == lb.SIGNIFICANT
    assert entry(board, "replay").acc_best and not entry(board, "near_tie").acc_best
    # forgetting is equal everywhere (0.05): every entry is best on it
    assert board.forgetting_best.all()


def test_ties_share_rank_and_lower_forgetting_is_best():
    records = ([make_record(a, s, "a", forgetting=0.10) for s, a in enumerate([0.8, 0.9])]
               + [make_record(a, s, "b", forgetting=0.02) for s, a in enumerate([0.9, 0.8])]
               + [make_record(0.5, s, "c", forgetting=0.01) for s in range(2)])
    board = board_of(records)
    assert list(zip(board.method, board["rank"])) == [("a", 1), ("b", 1), ("c", 3)]
    assert list(board.method[board.forgetting_best]) == ["c"]
    assert list(board.method[board.acc_best]) == ["a", "b"]
    assert entry(board, "b").marked  # differences 0.1 and -0.1: not significant


def test_entries_are_split_by_hyperparameters():
    records = ([make_record(0.8 + s / 100, s, "replay", {"mem_size": 200}) for s in range(2)]
               + [make_record(0.7 + s / 100, s, "replay", {"mem_size": 50}) for s in range(2)])
    board = board_of(records)
    assert list(zip(board.method, board.hyperparameters, board.n_seeds)) == [
        ("replay", '{"mem_size":200}', 2), ("replay", '{"mem_size":50}', 2)]


# --------------------------------------------------------------------------- the command


def test_markdown_table_from_folder(cli, records_dir):
    code, out, err = cli("leaderboard", records_dir)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"### Leaderboard: smoke v1 (setup hash {SMOKE.setup_hash[:12]})"
    rows = {line.split("|")[2].strip(): line for line in lines if line.startswith("| ")}
    assert "82.00 ± 2.00 [77.03, 86.97]" in rows["hand"]
    assert "**91.00 ± 1.00** [88.52, 93.48]" in rows["replay"]
    assert rows["near_tie"].split("|")[7].strip().endswith("†")
    assert "†" not in rows["worse"] and "†" not in rows["hand"]
    single = rows["single"].split("|")
    assert single[7].strip() == "85.00" and single[5].strip() == "1"
    assert rows["replay"].split("|")[6].strip() == "200"  # stored exemplars
    assert rows["replay"].split("|")[4].strip() == "power-law (alpha=5.6, rehearsal_fraction=0.5, tau=10.0)"
    assert rows["replay"].split("|")[3].strip() == "mem_size=200"


def test_footer_states_protocol_forms_test_and_versions(cli, records_dir):
    out = cli("leaderboard", records_dir)[1]
    assert SMOKE.setup_hash in out and "smoke v1" in out
    for form in METRIC_FORMS.values():
        assert form in out
    assert "paired t-test" in out and "alpha = 0.05" in out
    assert "clbench 0.1.0" in out and "Accuracies in %" in out


def test_invalid_json_refuses_naming_the_file(cli, records_dir, tmp_path):
    bad = records_dir / "nested" / "broken.json"
    bad.parent.mkdir()
    bad.write_text('{"schema_version": 1, "run_id": ')
    out_file = tmp_path / "board.md"
    code, out, err = cli("leaderboard", records_dir, "--out", out_file)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and str(bad) in err and "invalid record" in err
    assert not out_file.exists()


def test_wrong_protocol_hash_refuses_naming_the_file(cli, records_dir):
    path = sorted(records_dir.glob("*.json"))[0]
    data = json.loads(path.read_text())
    data["protocol"]["hash"] = "0" * 64
    path.write_text(json.dumps(data))
    code, out, err = cli("leaderboard", records_dir)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    # refused by the protocol-hash check, or first by the integrity seal the edit broke
    assert str(path) in err and ("hash does not match" in err or "integrity check" in err)


def test_conflicting_duplicate_refused_identical_copy_deduplicated(cli, tmp_path):
    a = write_all(tmp_path / "a", [make_record(0.8, 0), make_record(0.9, 1)])
    b = write_all(tmp_path / "b", [make_record(0.8, 0)])
    code, out, err = cli("leaderboard", a, b, "-f", "json")
    assert code == 0, err
    assert json.loads(out)[0]["seeds"] == [0, 1]
    write_all(tmp_path / "c", [make_record(0.7, 0)])
    code, _, err = cli("leaderboard", a, tmp_path / "c")
    assert code == 2 and "same run" in err and "seed 0" in err


def test_two_protocol_hashes_give_two_tables(cli, tmp_path):
    folder = write_all(tmp_path / "r", [make_record(0.9, s, "alpha") for s in range(2)]
                       + [make_record(0.6, s, "beta", protocol=SMOKE_OTHER) for s in range(2)])
    out = cli("leaderboard", folder)[1]
    tables = out.split("### Leaderboard: ")[1:]
    assert len(tables) == 2
    by_hash = {SMOKE.setup_hash[:12]: "alpha", SMOKE_OTHER.setup_hash[:12]: "beta"}
    for table in tables:
        own = next(h for h in by_hash if h in table.splitlines()[0])
        other = next(m for h, m in by_hash.items() if h != own)
        assert f"| {by_hash[own]} " in table and f"| {other} " not in table
    rows = list(csv.DictReader(io.StringIO(cli("leaderboard", folder, "-f", "csv")[1])))
    assert {(r["setup_hash"], r["method"], r["rank"]) for r in rows} == {
        (SMOKE.setup_hash, "alpha", "1"), (SMOKE_OTHER.setup_hash, "beta", "1")}
    entries = json.loads(cli("leaderboard", folder, "-f", "json")[1])
    assert {(e["protocol"]["setup_hash"], e["method"]) for e in entries} == {
        (SMOKE.setup_hash, "alpha"), (SMOKE_OTHER.setup_hash, "beta")}
    # both carry the name "smoke": the overridden one says how it differs, and comes second
    headers = [table.splitlines()[0] for table in tables]
    assert headers == [f"smoke v1 (setup hash {SMOKE.setup_hash[:12]})",
                       f"smoke v1 with training.epochs=3 (setup hash {SMOKE_OTHER.setup_hash[:12]})"]
    assert {e["method"]: e["protocol"]["changes"] for e in entries} == {
        "alpha": {}, "beta": {"smoke": "training.epochs=3"}}
    assert {r["method"]: r["protocol"] for r in rows} == {"alpha": "smoke v1", "beta": "smoke v1 with training.epochs=3"}


def test_protocol_filter_by_name_and_hash_prefix(cli, tmp_path):
    folder = write_all(tmp_path / "r", [make_record(0.9, s, "alpha") for s in range(2)]
                       + [make_record(0.6, s, "beta", protocol=SMOKE_OTHER) for s in range(2)]
                       + [make_record(0.7, s, "gamma", protocol=PMNIST) for s in range(2)])
    out = cli("leaderboard", folder, "--protocol", "pmnist-10")[1]
    assert out.count("### Leaderboard") == 1 and "| gamma " in out and "| alpha " not in out
    out = cli("leaderboard", folder, "--protocol", "smoke")[1]
    assert out.count("### Leaderboard") == 2 and "| gamma " not in out
    out = cli("leaderboard", folder, "-p", SMOKE_OTHER.hash[:10])[1]
    assert out.count("### Leaderboard") == 1 and "| beta " in out and "| alpha " not in out
    code, out, err = cli("leaderboard", folder, "--protocol", "nope")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "no records of protocol 'nope'" in err


def test_latex_booktabs_structure(cli, records_dir, tmp_path):
    out = cli("leaderboard", records_dir, "-f", "latex")[1]
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{rlllrrcccccc}",
                    r"\begin{table}", r"\end{table}"):
        assert out.count(command) == 1
    assert out.count(r"\begin{tabular}") == out.count(r"\end{tabular}")
    depth = 0  # braces balance, ignoring line breaks (\\) and escaped braces (\{ \})
    for char in re.sub(r"\\[{}]", "", out.replace("\\\\", "")):
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    assert r"mem\_size=200" in out and r"near\_tie" in out
    assert r"\textbf{91.00 $\pm$ 1.00}\\{\scriptsize [88.52, 93.48]}" in out
    assert r"90.83 $\pm$ 0.58$^{\dagger}$" in out  # near_tie: marked
    assert r"Accuracies in \%" in out and r"\hline" not in out
    body = out[out.index(r"\midrule"):out.index(r"\bottomrule")]
    assert all(line.count(" & ") == 11 and line.endswith(r" \\") for line in body.splitlines()[1:])
    if shutil.which("pdflatex"):
        doc = tmp_path / "doc.tex"
        doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                       + out + "\\end{document}\n")
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout[-2000:]


def test_csv_is_machine_readable(cli, records_dir):
    pd = pytest.importorskip("pandas")
    text = cli("leaderboard", records_dir, "-f", "csv")[1]
    frame = pd.read_csv(io.StringIO(text))
    assert len(frame) == 5 and set(frame["setup_hash"]) == {SMOKE.setup_hash}
    hand = frame[frame["method"] == "hand"].iloc[0]
    half = T_975_DF2 * 0.02 / math.sqrt(3)
    assert hand["acc_mean"] == pytest.approx(0.82, abs=1e-9)   # fractions, not percent
    assert hand["acc_std"] == pytest.approx(0.02, abs=1e-9)
    assert hand["acc_ci_low"] == pytest.approx(0.82 - half, abs=1e-9)
    assert hand["acc_ci_high"] == pytest.approx(0.82 + half, abs=1e-9)
    assert hand["n_seeds"] == 3 and hand["rank"] == 4
    for key in lb.METRIC_LABELS:
        for part in ("mean", "std", "ci_low", "ci_high"):
            assert f"{key}_{part}" in frame.columns
    single = frame[frame["method"] == "single"].iloc[0]
    assert pd.isna(single["acc_std"]) and single["significance"] == "untestable"
    near = frame[frame["method"] == "near_tie"].iloc[0]
    assert near["marked"] and near["p_value"] > 0.05


def test_html_is_a_well_formed_table(cli, records_dir):
    out = cli("leaderboard", records_dir, "-f", "html")[1]

    class Checker(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.rows = [], 0

        def handle_starttag(self, tag, attrs):
            self.stack.append(tag)
            self.rows += tag == "tr"

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag

    checker = Checker()
    checker.feed(out)
    assert checker.stack == [] and checker.rows == 6  # header + 5 entries
    assert "<table" in out and "<strong>91.00 &plusmn; 1.00</strong>" in out and "&dagger;" in out
    assert out.isascii()


def test_json_lists_entries_with_all_numbers(cli, records_dir):
    entries = json.loads(cli("leaderboard", records_dir, "-f", "json")[1])
    assert [e["method"] for e in entries] == ["replay", "near_tie", "single", "hand", "worse"]
    hand = next(e for e in entries if e["method"] == "hand")
    acc = hand["metrics"]["acc"]
    assert acc["mean"] == pytest.approx(0.82) and acc["std"] == pytest.approx(0.02)
    assert acc["per_seed"] == HAND and hand["seeds"] == [0, 1, 2]
    assert hand["protocol"]["setup_hash"] == SMOKE.setup_hash and hand["rank"] == 4
    assert set(hand["metrics"]) == set(lb.METRIC_LABELS)
    near = next(e for e in entries if e["method"] == "near_tie")
    assert near["significance"]["marked"] and near["significance"]["t"] == pytest.approx(0.5)
    single = next(e for e in entries if e["method"] == "single")
    assert single["metrics"]["acc"]["std"] is None and not single["significance"]["marked"]


@pytest.mark.parametrize("fmt", lb.FORMATS)
def test_regeneration_is_byte_identical(cli, records_dir, tmp_path, fmt):
    first = cli("leaderboard", records_dir, "-f", fmt)[1]
    files = sorted(records_dir.glob("*.json"), reverse=True)
    assert cli("leaderboard", *files, "-f", fmt)[1] == first          # any input order
    assert cli("leaderboard", records_dir, *files[:2], "-f", fmt)[1] == first  # repeats ignored
    copy = shutil.copytree(records_dir, tmp_path / "copy")
    assert cli("leaderboard", copy, "-f", fmt)[1] == first


def test_out_writes_the_same_bytes(cli, records_dir, tmp_path):
    target = tmp_path / "board.tex"
    code, out, err = cli("leaderboard", records_dir, "--out", target)
    assert code == 0 and out == "" and str(target) in err
    assert target.read_text() == cli("leaderboard", records_dir, "-f", "latex")[1]  # format from suffix
    target.write_text("old")
    assert cli("leaderboard", records_dir, "-f", "md", "-o", target)[0] == 0
    assert target.read_text() == cli("leaderboard", records_dir)[1]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp leftovers


@pytest.mark.parametrize("where", ["missing-dir/board.md", "."])
def test_unwritable_out_is_a_one_line_error(cli, records_dir, tmp_path, where):
    code, out, err = cli("leaderboard", records_dir, "--out", tmp_path / where)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "cannot write" in err


def test_missing_and_empty_inputs_are_errors(cli, tmp_path):
    code, _, err = cli("leaderboard", tmp_path / "nope")
    assert code == 2 and "no such record file or folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli("leaderboard", tmp_path / "empty")
    assert code == 2 and "no record files" in err
    code, _, err = cli("leaderboard", tmp_path / "empty", "-f", "pdf")
    assert code == 2 and "invalid choice" in err


def test_environments_of_one_setup_share_a_table(cli, tmp_path):
    """Same benchmark, model, training and evaluation: environments are entries of one table."""
    uniform = apply_overrides(SMOKE, ["environment.kind=uniform"])
    folder = write_all(tmp_path / "r", [make_record(0.9, s, protocol=SMOKE) for s in range(2)]
                       + [make_record(0.8, s, protocol=uniform) for s in range(2)])
    board = lb.leaderboard_frame(lb.read_records([folder]))
    assert set(board.setup_hash) == {SMOKE.setup_hash} == {uniform.setup_hash}
    assert sorted(e.split(" ")[0] for e in board.environment) == ["power-law", "uniform"]
    out = cli("leaderboard", folder)[1]
    assert SMOKE.hash[:12] in out and uniform.hash[:12] in out  # both full hashes named
