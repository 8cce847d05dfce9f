"""The docs cannot drift: every output they show is one `docs/examples/regenerate.py` produced.

- Every `<!-- example: NAME -->` block in README.md and docs/*.md holds exactly
  docs/examples/NAME.txt (or NAME.py / NAME.sh), and every example is shown somewhere.
- Cheap examples (no training) are rerun and must print the same; so is the quickstart,
  which trains `naive` on `smoke` once (the one real training run here).
- Examples that train more are rerun over their run records, committed in
  docs/examples/runs/GROUP/: each command finds its records and skips the training, so
  it must print the same tables, and every ACC the committed output shows is its record's.
- The slow ones (check-plugin, the plugin's own pytest, a download attempt) are checked
  for what can be checked without running them.

Timings are masked in every comparison. When a check fails because the code changed on
purpose: python docs/examples/regenerate.py [GROUP ...], and commit what it rewrites.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

from clbench.records import read_record

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("regenerate", REPO / "docs" / "examples" / "regenerate.py")
regenerate = sys.modules["regenerate"] = importlib.util.module_from_spec(_spec)  # dataclasses need it there
_spec.loader.exec_module(regenerate)

FIX = "run `python docs/examples/regenerate.py` (see its docstring)"


def groups(*kinds: str) -> list:
    return [pytest.param(g, id=g.name) for g in regenerate.GROUPS if g.kind in kinds]


def committed(name: str) -> str:
    return (regenerate.HERE / f"{name}.txt").read_text()


def assert_same(name: str, expected: str, produced: str, normalise=regenerate.masked) -> None:
    assert normalise(produced) == normalise(expected), (
        f"example '{name}' no longer matches what the code prints; {FIX}\n"
        f"--- docs/examples/{name}.txt\n{expected}\n--- now\n{produced}")


# --------------------------------------------------------------------------- the documents


def stale_blocks(documents) -> list[str]:
    """'doc: NAME' for every embedded block that differs from its file or has none."""
    stale = []
    for path in documents:
        for name, text in regenerate.embedded(Path(path).read_text()).items():
            file = regenerate.HERE / (name if name.endswith((".py", ".sh")) else f"{name}.txt")
            if not file.exists() or file.read_text() != text:
                stale.append(f"{Path(path).name}: {name}")
    return stale


def test_every_embedded_block_is_its_example_file():
    assert stale_blocks(regenerate.DOCUMENTS) == [], f"blocks differ from docs/examples/; {FIX}"


def test_every_example_is_generated_and_shown():
    shown = {name for path in regenerate.DOCUMENTS for name in regenerate.embedded(path.read_text())}
    for name, (_, example) in regenerate.EXAMPLES.items():
        assert (regenerate.HERE / f"{name}.txt").exists(), f"docs/examples/{name}.txt is missing; {FIX}"
        assert name in shown, f"example '{name}' is not shown in any document"
        if example.source:
            assert f"{name}.{example.source}" in shown, f"the script of '{name}' is not shown"
    assert shown <= set(regenerate.EXAMPLES) | {f"{n}.{e.source}" for n, (_, e) in regenerate.EXAMPLES.items()}


def test_a_hand_edit_is_caught(tmp_path):
    """Editing a shown output by hand (in the document or in its file) is reported."""
    doc = tmp_path / "quickstart.md"
    text = (REPO / "docs" / "quickstart.md").read_text()
    assert "| ACC           | 89.95 ± 0.07     |" in text
    doc.write_text(text.replace("| ACC           | 89.95 ± 0.07     |", "| ACC           | 89.96 ± 0.07     |"))
    assert stale_blocks([doc]) == ["quickstart.md: quickstart-first-run"]
    edited = committed("quickstart-first-run").replace("89.95 ± 0.07", "89.96 ± 0.07")
    assert regenerate.masked(edited) != regenerate.masked(committed("quickstart-first-run"))
    assert regenerate.replayed(edited) != regenerate.replayed(committed("quickstart-first-run"))


def test_masks_hide_timings_only():
    line = "seed 0: ACC 89.90%  (35.5 s)  -> results/smoke__naive__seed0__c09df18041.json"
    assert regenerate.masked(line) == "seed 0: ACC 89.90%  (<time>)  -> results/smoke__naive__seed0__c09df18041.json"
    assert regenerate.masked("5 passed in 48.95s") == "5 passed in <time>"
    assert regenerate.masked("| ACC | 89.95 ± 0.07 | 2 |\nseeds 0 1") == "| ACC | 89.95 ± 0.07 | 2 |\nseeds 0 1"
    skipped = ("seed 0: skipped, its record is already in results/smoke__naive__seed0__c09df18041.json "
               "(--force runs it again)")
    assert regenerate.replayed(line) == regenerate.replayed(skipped) == \
        "seed 0: record results/smoke__naive__seed0__c09df18041.json"


# --------------------------------------------------------------------------- rerunning


@pytest.mark.parametrize("group", groups("cheap", "live"))
def test_examples_rerun_identically(group, tmp_path):
    outputs = regenerate.run_group(group, regenerate.REPO if group.repo else tmp_path)
    for example in group.examples:
        assert_same(example.name, committed(example.name), outputs[example.name])
        if example.source:
            shown = (regenerate.HERE / f"{example.name}.{example.source}").read_text()
            assert shown == regenerate.source_text(example), f"the script of '{example.name}' changed; {FIX}"


@pytest.mark.parametrize("group", groups("trains"))
def test_training_examples_replay_from_their_records(group, tmp_path):
    folder = group.folder
    records = sorted(folder.rglob("*.json"))
    assert records, f"{folder} holds no run records; {FIX}"
    for path in records:
        read_record(path)  # valid and sealed, or the replay would train (and this fails)
    cwd = Path(shutil.copytree(folder, tmp_path / group.name))
    outputs = regenerate.run_group(group, cwd, replay=True)
    for example in group.examples:
        text = committed(example.name)
        assert_same(example.name, text, outputs[example.name], regenerate.replayed)
        for seed, acc, path in regenerate.TRAINED.findall(text):  # what was trained: its record
            record = read_record(folder / path)
            assert (record.seed, f"{record.metrics.acc * 100:.2f}") == (int(seed), acc), path
        assert not list(cwd.rglob("checkpoints")), "a replay trained something"


# --------------------------------------------------------------------------- the slow ones


def test_plugin_pytest_example_counts_the_shown_tests():
    tests = regenerate.plugin_files()["clbench-mymethod/tests/test_mymethod.py"]
    n = len(re.findall(r"^def test_", tests, re.M))
    text = committed("plugin-pytest")
    assert re.search(rf"^{n} passed in ", text, re.M), f"the page shows {n} tests; {FIX}"
    assert not re.search(r"failed|error|warning", text), text


def test_plugin_check_example_is_all_passes_on_the_shown_record():
    lines = committed("plugin-check").splitlines()
    assert lines[0].startswith("$ clbench check-plugin mymethod")
    assert all(line.startswith("PASS  ") for line in lines[1:-1]) and lines[-1] == "mymethod: all checks passed"
    # the check's run is seed 0 of the default hyperparameters: the committed record's ACC
    [record] = [read_record(p) for p in (regenerate.RUNS / "plugin" / "results").glob("*seed0*.json")
                if read_record(p).method.hyperparameters == {"strength": 1.0}]
    assert f"completes smoke: ACC {record.metrics.acc:.3f}," in committed("plugin-check")
    assert "FAIL  resumes from a per-phase checkpoint" in committed("plugin-check-stateless")
    assert "PASS  resumes from a per-phase checkpoint" in committed("plugin-check-resumable")
