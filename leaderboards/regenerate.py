"""Rebuild every committed leaderboard table and plot from the committed run records.

    python leaderboards/regenerate.py            # rewrite leaderboards/<suite>/{leaderboard.*,plots/}
    python leaderboards/regenerate.py --check    # exit 1 if any committed output differs

Reference suites (`reference-*`) also get `comparison.md`: clbench's ACC beside the
published numbers of `clbench.references`.

Each suite folder holds `records/` (the JSON run records, as `clbench suite` wrote them);
everything else in the folder is derived from them, byte for byte.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from clbench.leaderboard import leaderboard_frame, read_records, render
from clbench.plots import write_plots
from clbench.records import write_atomic
from clbench.references import comparison_table

HERE = Path(__file__).resolve().parent
FORMATS = {"md": "leaderboard.md", "latex": "leaderboard.tex", "csv": "leaderboard.csv"}


def suite_folders() -> list[Path]:
    return sorted(p.parent for p in HERE.glob("*/records") if any(p.glob("*.json")))


def build(folder: Path, target: Path) -> list[Path]:
    """Write the tables and plots of one suite folder into `target`; return the paths."""
    board = leaderboard_frame(read_records([folder / "records"]))
    written = []
    for fmt, name in FORMATS.items():
        path = target / name
        write_atomic(path, render(board, fmt))
        written.append(path)
    written += write_plots([folder / "records"], target / "plots")
    comparison = comparison_table(board)
    if comparison:  # a reference suite: clbench beside the published numbers
        path = target / "comparison.md"
        write_atomic(path, f"# {folder.name}: clbench beside the published numbers\n\n"
                           "ACC in %, mean ± std over seeds; gap = clbench - published. "
                           "`leaderboards/README.md` explains the gaps.\n\n" + comparison)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    differing = []
    for folder in suite_folders():
        if not args.check:
            for path in build(folder, folder):
                print(path.relative_to(HERE))
            continue
        with tempfile.TemporaryDirectory() as scratch:
            for path in build(folder, Path(scratch)):
                committed = folder / path.relative_to(scratch)
                if not committed.exists() or committed.read_bytes() != path.read_bytes():
                    differing.append(committed.relative_to(HERE))
    if args.check:
        for path in differing:
            print(f"differs from its records: {path}")
        print("all leaderboards match their records" if not differing else f"{len(differing)} files differ")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
