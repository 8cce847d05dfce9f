"""Metrics on hand-computed matrices."""

import pytest

from clbench import metrics

R = [
    [0.9, 0.1, 0.2],
    [0.6, 0.8, 0.3],
    [0.5, 0.7, 0.95],
]
B = [0.1, 0.1, 0.1]


def test_acc_is_the_mean_of_the_last_row():
    assert metrics.average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.95) / 3)


def test_bwt():
    assert metrics.backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)


def test_forgetting_uses_the_max_before_the_last_phase():
    # task 0: max(0.9, 0.6) - 0.5 = 0.4; task 1: max(0.1, 0.8) - 0.7 = 0.1
    assert metrics.forgetting(R) == pytest.approx(0.25)


def test_fwt_subtracts_untrained_accuracy():
    # (R[0][1] - b1) + (R[1][2] - b2) = 0.0 + 0.2
    assert metrics.forward_transfer(R, B) == pytest.approx(0.1)


def test_learning_accuracy_is_the_diagonal_mean():
    assert metrics.learning_accuracy(R) == pytest.approx((0.9 + 0.8 + 0.95) / 3)


def test_single_task_has_no_transfer_metrics():
    assert metrics.backward_transfer([[0.9]]) is None
    assert metrics.forgetting([[0.9]]) is None
    assert metrics.forward_transfer([[0.9]], [0.1]) is None


def test_non_square_matrix_is_rejected():
    with pytest.raises(ValueError):
        metrics.average_accuracy([[0.1, 0.2]])


def test_curve_area_and_threshold():
    samples, acc = [0, 50, 100], [0.0, 1.0, 1.0]
    # trapezoids: 0.5 * (0 + 1) / 2 + 0.5 * (1 + 1) / 2 = 0.75
    assert metrics.curve_area(samples, acc) == pytest.approx(0.75)
    assert metrics.samples_to_threshold(samples, acc, 0.8) == 50
    assert metrics.samples_to_threshold(samples, [0.1, 0.2, 0.3], 0.8) is None


def test_forward_facilitation_slope_is_positive_when_later_tasks_learn_faster():
    curves = [
        {"samples": [0, 10, 20], "accuracy": [0.1, 0.5, 0.9]},
        {"samples": [0, 10, 20], "accuracy": [0.1, 0.7, 0.9]},
        {"samples": [0, 10, 20], "accuracy": [0.1, 0.9, 0.9]},
    ]
    ff = metrics.forward_facilitation(curves, 0.85)
    assert ff["samples_to_threshold"] == [20, 20, 10]
    assert ff["auc"] == pytest.approx([0.5, 0.6, 0.7])
    assert ff["auc_slope"] == pytest.approx(0.1)
    assert ff["mean_auc"] == pytest.approx(0.6)


def test_compute_metrics_bundles_everything():
    curves = [{"samples": [0, 1], "accuracy": [0.1, 0.9]}] * 3
    m = metrics.compute_metrics(R, B, curves, 0.8)
    assert set(m) == {"acc", "bwt", "forgetting", "fwt", "learning_accuracy", "ff_auc", "forward_facilitation"}
    assert m["ff_auc"] == pytest.approx(0.5)
