"""Plain-text summaries of run records (the table `clbench evaluate` prints)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tabulate import tabulate

from .leaderboard import leaderboard_frame
from .metrics import METRIC_FORMS, METRIC_LABELS
from .records import RunRecord


def format_mean_std(mean: float, std: float, scale: float = 100.0) -> str:
    """`mean ± std` in percent; the mean alone without a std, `n/a` without a mean (NaN)."""
    if math.isnan(mean):
        return "n/a"
    if math.isnan(std):
        return f"{mean * scale:.2f}"
    return f"{mean * scale:.2f} ± {std * scale:.2f}"


def metrics_table(records: Sequence[RunRecord], fmt: str = "github") -> str:
    """One row per metric: mean ± std over the seeds of one entry (as `evaluate` runs), in percent.

    The numbers are the leaderboard's (`leaderboard_frame`), so the two never disagree.
    """
    board = leaderboard_frame(list(records))
    if len(board) != 1:
        raise ValueError("metrics_table needs the records of one method configuration on one protocol")
    entry = board.iloc[0]
    rows = [[label, format_mean_std(entry[f"{key}_mean"], entry[f"{key}_std"]), int(entry[f"{key}_n"])]
            for key, label in METRIC_LABELS.items()]
    # the cells are text: a single seed's "89.90" must not be re-read as the number 89.9
    table = tabulate(rows, headers=["metric", "mean ± std (%)", "seeds"], tablefmt=fmt, disable_numparse=[1])
    forms = "; ".join(METRIC_FORMS[key] for key in METRIC_LABELS)
    return f"{table}\nForms (means over tasks, std over seeds): {forms}"


def accuracy_matrix_table(record: RunRecord, fmt: str = "github") -> str:
    """R[i][j] in percent, rows = after phase i, columns = task j."""
    T = len(record.accuracy_matrix)
    rows = [[f"after phase {i}"] + [f"{a * 100:.1f}" for a in row]
            for i, row in enumerate(record.accuracy_matrix)]
    rows.insert(0, ["untrained"] + [f"{a * 100:.1f}" for a in record.untrained_accuracy])
    return tabulate(rows, headers=[""] + [f"task {j}" for j in range(T)], tablefmt=fmt)
