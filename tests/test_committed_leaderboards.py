"""The committed leaderboards are exactly what their committed records produce."""

import runpy
from pathlib import Path

import pytest

from clbench.records import read_record

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
regenerate = runpy.run_path(str(LEADERBOARDS / "regenerate.py"))


def test_regenerating_reproduces_the_committed_files():
    if not regenerate["suite_folders"]():
        pytest.skip("no committed suite records yet")
    assert regenerate["main"](["--check"]) == 0


def test_committed_records_are_valid_and_real():
    for path in sorted(LEADERBOARDS.glob("*/records/*.json")):
        record = read_record(path)  # schema, protocol hash, run id and integrity seal
        assert record.wall_time_s > 0 and record.hardware.cpu_count > 0
        assert len(record.accuracy_matrix) == record.protocol["benchmark"]["n_tasks"]


def test_every_number_the_reference_section_quotes_is_in_a_derived_table():
    """leaderboards/README.md's "Published numbers reproduced" section quotes clbench's
    and the paper's figures; each one (two decimals) must appear in the comparison or
    leaderboard files regenerated from the records, or in an investigation's table written
    by its script (`leaderboards/investigations/`), so the prose cannot drift from them."""
    import re

    readme = (LEADERBOARDS / "README.md").read_text()
    section = readme[readme.index("## Published numbers reproduced"):]
    derived = "".join(path.read_text() for pattern in ("reference-*/comparison.md", "reference-*/leaderboard.md",
                                                       "investigations/*.md")
                      for path in LEADERBOARDS.glob(pattern))
    quoted = set(re.findall(r"(?<![\d.])[+−-]?\d+\.\d\d(?!\d)", section))
    assert len(quoted) > 30
    missing = sorted(n for n in quoted if n.replace("−", "-").lstrip("+-") not in derived)
    assert not missing, f"quoted in leaderboards/README.md but in no derived table: {missing}"
