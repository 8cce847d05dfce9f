"""Plain-text summaries of run records (the table `clbench evaluate` prints)."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from .leaderboard import summarize
from .metrics import METRIC_FORMS, METRIC_LABELS
from .records import RunRecord


def format_mean_std(values: Sequence[float], scale: float = 100.0) -> str:
    summary = summarize(values)
    mean, std = summary.mean, summary.std
    if mean is None:
        return "n/a"
    if std is None:
        return f"{mean * scale:.2f}"
    return f"{mean * scale:.2f} ± {std * scale:.2f}"


def metrics_table(records: Sequence[RunRecord], fmt: str = "github") -> str:
    """One row per metric: mean ± std over the records' seeds, in percent."""
    rows = []
    for key, label in METRIC_LABELS.items():
        values = [getattr(r.metrics, key) for r in records if getattr(r.metrics, key) is not None]
        rows.append([label, format_mean_std(values), len(values)])
    table = tabulate(rows, headers=["metric", "mean ± std (%)", "seeds"], tablefmt=fmt)
    forms = "; ".join(METRIC_FORMS[key] for key in METRIC_LABELS)
    return f"{table}\nForms (means over tasks, std over seeds): {forms}"


def accuracy_matrix_table(record: RunRecord, fmt: str = "github") -> str:
    """R[i][j] in percent, rows = after phase i, columns = task j."""
    T = len(record.accuracy_matrix)
    rows = [[f"after phase {i}"] + [f"{a * 100:.1f}" for a in row]
            for i, row in enumerate(record.accuracy_matrix)]
    rows.insert(0, ["untrained"] + [f"{a * 100:.1f}" for a in record.untrained_accuracy])
    return tabulate(rows, headers=[""] + [f"task {j}" for j in range(T)], tablefmt=fmt)
