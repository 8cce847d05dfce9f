"""The investigation scripts under leaderboards/investigations measure what they say.

`input_scaling.py` re-runs reference rows on pixels scaled to [0, 1]; its table is only
evidence if the runs receive exactly those inputs, and van de Ven's EWC settings. Its first
version patched the scaling in the method's process only, while clbench builds tasks and
test sets in a separate harness process: its runs trained on standardised inputs. The
test therefore checks what the strategy trains on and what the harness scores.

`lwf_class_incremental.py` puts van de Ven's LwF losses back one by one; its table is only
evidence if each piece is the loss it names. These tests pin them to the formulas written
out by hand (van de Ven's `loss_fn_kd`: soft targets padded with zeros for the current
classes, cross-entropy over every seen class's unit).

`fisher_labels.py` compares EWC's Fisher at the true and at the predicted labels; they
must agree exactly where the network classifies every training image correctly, and
differ, with the misclassified images carrying part of the true-label one, where not.
"""

import runpy
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

SCRIPT = Path(__file__).resolve().parents[1] / "leaderboards" / "investigations" / "lwf_class_incremental.py"


@pytest.fixture(scope="module")
def lwf():
    return runpy.run_path(str(SCRIPT))


def _criterion(lwf, units, old, new):
    criterion = lwf["UnitMaskedCrossEntropy"](units)
    criterion.old, criterion.new = set(old), set(new)
    return criterion


def test_seen_class_cross_entropy_is_the_cross_entropy_over_the_seen_units(lwf):
    torch.manual_seed(0)
    logits, targets = torch.randn(16, 10), torch.tensor([4, 5] * 8)
    seen = _criterion(lwf, "seen", old={0, 1, 2, 3}, new={4, 5})
    # targets 4 and 5 are positions 4 and 5 among the seen units 0..5
    assert torch.allclose(seen(logits, targets), F.cross_entropy(logits[:, :6], targets))
    new = _criterion(lwf, "new", old={0, 1, 2, 3}, new={4, 5})
    assert torch.allclose(new(logits, targets), F.cross_entropy(logits[:, 4:6], targets - 4))
    every = _criterion(lwf, "all", old={0, 1, 2, 3}, new={4, 5})
    assert torch.allclose(every(logits, targets), F.cross_entropy(logits, targets))
    # the masked units get no gradient (not merely a small one)
    logits.requires_grad_(True)
    seen(logits, targets).backward()
    assert logits.grad[:, 6:].abs().max() == 0 and logits.grad[:, :6].abs().max() > 0


def test_padded_distillation_is_van_de_vens_loss_fn_kd(lwf):
    torch.manual_seed(1)
    out, prev_out, T = torch.randn(8, 10), torch.randn(8, 10), 2.0
    criterion = _criterion(lwf, "seen", old={0, 1, 2, 3}, new={4, 5})
    distillation = lwf["_padded_distillation"](criterion, alpha=1.0, temperature=T)
    loss = distillation._distillation_loss(out, prev_out, {0, 1, 2, 3})
    targets = torch.cat([F.softmax(prev_out[:, :4] / T, dim=1), torch.zeros(8, 2)], dim=1)
    expected = -(targets * F.log_softmax(out[:, :6] / T, dim=1)).sum(dim=1).mean()
    assert torch.allclose(loss, expected)
    # unlike Avalanche's (old units only), it pushes the current classes' units down
    out.requires_grad_(True)
    distillation._distillation_loss(out, prev_out, {0, 1, 2, 3}).backward()
    assert (out.grad[:, 4:6] > 0).all()  # gradient descent lowers them
    assert out.grad[:, 6:].abs().max() == 0



INPUTS = SCRIPT.parent / "input_scaling.py"


def test_the_input_scaling_investigation_trains_and_tests_on_pixels_in_0_1(data_root):
    """The data are built in clbench's harness process (a fresh interpreter), so the
    check is on what the strategy trains on and on how the harness scores: the same
    runs on standardised and on [0, 1] inputs score differently."""
    from avalanche.core import SupervisedPlugin

    from clbench.plugins import get_registry
    from clbench.presets import get_protocol
    from clbench.protocol import apply_overrides
    from clbench.runner import RunRequest, run

    class Keep(SupervisedPlugin):
        def after_training_exp(self, strategy, **kwargs):
            self.x = torch.cat([strategy.experience.dataset[i][0].unsqueeze(0)
                                for i in range(len(strategy.experience.dataset))])

    inputs = runpy.run_path(str(INPUTS))
    small = ["benchmark.n_tasks=2", "benchmark.train_samples_per_task=256", "training.epochs=1",
             "benchmark.test_samples_per_task=200", "evaluation.curve_test_samples=100"]
    naive = get_registry().get("naive")

    def trained_on(column):
        protocol = apply_overrides(get_protocol("vdv-pmnist-domain"), [*small, inputs["SCALINGS"][column]])
        keep = Keep()
        record = run(RunRequest(protocol, naive, naive.method.parse_hyperparameters({}), 0, data_root,
                                observers=[keep]))
        return keep.x, record

    standardised, before = trained_on("standardised")
    scaled, after = trained_on("[0, 1]")
    assert scaled.min() == 0 and scaled.max() == 1 and (scaled == 0).float().mean() > 0.5
    assert standardised.min() < -0.4  # MNIST's standardised background
    # the same images in the same permuted order, only scaled: x_std = (x - mean) / std
    assert torch.allclose(standardised, (scaled - 0.1307) / 0.3081, atol=1e-5)
    assert before.accuracy_matrix != after.accuracy_matrix
    assert before.protocol["hash"] == apply_overrides(get_protocol("vdv-pmnist-domain"), small).hash
    assert after.protocol["benchmark"]["inputs"] == "unit-interval" and after.protocol["hash"] != before.protocol["hash"]
    assert inputs["method_settings"]("vdv-pmnist-domain", "ewc-vdv") == (
        "ewc", {"ewc_lambda": "250", "fisher": "per-sample", "fisher_labels": "predicted"})


def test_the_fisher_labels_investigation_separates_what_the_labels_change(data_root):
    from clbench.presets import get_protocol
    from clbench.protocol import apply_overrides

    fisher = runpy.run_path(str(SCRIPT.parent / "fisher_labels.py"))
    # two tasks of five digits, a few iterations: some training images stay misclassified
    small = apply_overrides(get_protocol("vdv-smnist-task"), [
        "benchmark.n_tasks=2", "benchmark.train_samples_per_task=512",
        "benchmark.test_samples_per_task=100", "evaluation.curve_test_samples=100", "training.epochs=1",
        "training.lr=0.0001"])
    rows = fisher["measure"](small, data_root, 0)
    assert [row["task"] for row in rows] == [0, 1]
    for row in rows:
        share = row["share of the true-label Fisher from misclassified %"]
        if row["training error %"] == 0:
            assert row["true / predicted"] == pytest.approx(1, rel=1e-5) and share == 0
        else:
            assert row["true / predicted"] != pytest.approx(1, rel=1e-3) and 0 < share < 100
    assert any(row["training error %"] > 0 for row in rows)  # the case that tells them apart ran
    text = fisher["page"]("vdv-smnist-task", pd.DataFrame(rows))
    assert text.count(f"| {rows[0]['digits']} ") == 1 and "Per seed" in text


def test_the_training_pool_investigation_changes_only_the_images_per_task():
    """Both columns give every task the committed protocol's 5,000 steps of 128; the second
    draws them from all of MNIST's training images."""
    from clbench.presets import get_protocol
    from clbench.protocol import apply_overrides

    pools = runpy.run_path(str(SCRIPT.parent / "training_pool.py"))["POOLS"]
    committed = get_protocol("vdv-pmnist-domain")
    fixed, fresh = (apply_overrides(committed, overrides) for overrides in pools.values())
    assert fixed.hash == committed.hash
    assert fixed.training.planned_steps(fixed.benchmark.train_samples_per_task) == 5000
    assert fresh.training.planned_steps(fresh.benchmark.train_samples_per_task) == 5000
    assert fresh.benchmark.train_samples_per_task == 60000 > fixed.benchmark.train_samples_per_task
    same = {k: v for k, v in fresh.resolved().items() if k not in ("benchmark", "training", "hash")}
    assert same == {k: v for k, v in fixed.resolved().items() if k not in ("benchmark", "training", "hash")}
    assert {**fresh.resolved()["training"], "epochs": 20, "iterations": None} == fixed.resolved()["training"]
