"""Continual-learning metrics, computed by the harness from what it measured itself.

R[i][j] is the test accuracy on task j after phase i, b[j] the untrained model's accuracy
on task j, T the number of tasks. Every average is over tasks (each task weighs the same,
whatever its test-set size). Formulas and their relation to other libraries:
docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

Matrix = Sequence[Sequence[float]]

#: The scalar metrics every record carries, in table order, with a one-line definition.
METRIC_FORMS = {
    "acc": "ACC = mean_j R[T-1][j]",
    "bwt": "BWT = mean_{j<T-1} (R[T-1][j] - R[j][j])",
    "forgetting": "F = mean_{j<T-1} (max_{l<T-1} R[l][j] - R[T-1][j])",
    "fwt": "FWT = mean_{j>0} (R[j-1][j] - b[j])",
    "learning_accuracy": "LA = mean_j R[j][j]",
    "ff_auc": "FF-AUC = mean_p (normalised area under the new task's learning curve in phase p)",
}


#: Column labels of the scalar metrics, in table order.
METRIC_LABELS = {
    "acc": "ACC",
    "bwt": "BWT",
    "forgetting": "Forgetting",
    "fwt": "FWT",
    "learning_accuracy": "Learning acc.",
    "ff_auc": "FF-AUC",
}


def _check_square(R: Matrix) -> int:
    T = len(R)
    if T == 0 or any(len(row) != T for row in R):
        raise ValueError("the accuracy matrix must be square and non-empty")
    return T


def average_accuracy(R: Matrix) -> float:
    T = _check_square(R)
    return fmean(R[T - 1])


def backward_transfer(R: Matrix) -> float | None:
    T = _check_square(R)
    if T < 2:
        return None
    return fmean(R[T - 1][j] - R[j][j] for j in range(T - 1))


def forgetting(R: Matrix) -> float | None:
    T = _check_square(R)
    if T < 2:
        return None
    return fmean(max(R[l][j] for l in range(T - 1)) - R[T - 1][j] for j in range(T - 1))


def forward_transfer(R: Matrix, b: Sequence[float]) -> float | None:
    T = _check_square(R)
    if len(b) != T:
        raise ValueError("untrained accuracies must have one entry per task")
    if T < 2:
        return None
    return fmean(R[j - 1][j] - b[j] for j in range(1, T))


def learning_accuracy(R: Matrix) -> float:
    T = _check_square(R)
    return fmean(R[j][j] for j in range(T))


def curve_area(samples: Sequence[int], accuracy: Sequence[float]) -> float:
    """Trapezoidal area under accuracy over the fraction of the phase trained, in [0, 1]."""
    if len(samples) != len(accuracy) or not samples:
        raise ValueError("a learning curve needs as many accuracies as sample counts")
    total = samples[-1]
    if total <= 0 or len(samples) == 1:
        return float(accuracy[-1])
    area = 0.0
    for i in range(1, len(samples)):
        width = (samples[i] - samples[i - 1]) / total
        area += width * (accuracy[i] + accuracy[i - 1]) / 2
    return area


def samples_to_threshold(samples: Sequence[int], accuracy: Sequence[float], threshold: float) -> int | None:
    """Training samples seen in the phase when accuracy first reached `threshold` (None: never)."""
    for seen, acc in zip(samples, accuracy):
        if acc >= threshold:
            return int(seen)
    return None


def _slope(values: Sequence[float]) -> float | None:
    """Least-squares slope of values against their index (per phase)."""
    n = len(values)
    if n < 2:
        return None
    mean_x, mean_y = (n - 1) / 2, fmean(values)
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def forward_facilitation(curves: Sequence[dict], threshold: float) -> dict:
    """How fast each phase learns its new task: samples to threshold and curve area per phase.

    `curves` holds one {"samples": [...], "accuracy": [...]} per phase. A positive
    `auc_slope` means later tasks are learned faster than earlier ones.
    """
    auc = [curve_area(c["samples"], c["accuracy"]) for c in curves]
    return {
        "threshold": threshold,
        "samples_to_threshold": [samples_to_threshold(c["samples"], c["accuracy"], threshold) for c in curves],
        "auc": auc,
        "mean_auc": fmean(auc) if auc else None,
        "auc_slope": _slope(auc),
    }


def compute_metrics(R: Matrix, b: Sequence[float], curves: Sequence[dict], threshold: float) -> dict:
    """Every metric of a run, as stored in its record."""
    facilitation = forward_facilitation(curves, threshold)
    return {
        "acc": average_accuracy(R),
        "bwt": backward_transfer(R),
        "forgetting": forgetting(R),
        "fwt": forward_transfer(R, b),
        "learning_accuracy": learning_accuracy(R),
        "ff_auc": facilitation["mean_auc"],
        "forward_facilitation": facilitation,
    }
