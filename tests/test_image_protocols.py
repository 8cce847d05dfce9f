"""Image protocols end to end, on generated data in torchvision's on-disk formats.

CIFAR-100 and Tiny ImageNet cannot be downloaded here, so `tests/image_data.py` writes
miniatures in their real layouts, read through torchvision's loaders by the harness
process. Checked:

- `clbench evaluate naive --protocol scifar100-10-class --data-root <generated>` end to end;
- every backbone trains and is evaluated (class- and task-incremental), on both datasets;
- the image presets are what they say (Mammoth's recipe, hashed augmentation);
- mixed precision on the CPU: bf16 and fp16 runs complete, differ from fp32, and their
  records state precision and device;
- class-incremental baselines pass `clbench check-plugin` on a small image protocol.
"""

from __future__ import annotations

import pytest
import torch

from clbench.plugins import get_registry
from clbench.presets import PROTOCOLS, get_protocol
from clbench.protocol import apply_overrides
from clbench.records import read_record
from clbench.runner import RunRequest, run

import image_data

#: Two tasks of 50 classes, 20 training images per task: seconds per run on a CPU.
TWO_TASKS = ["benchmark.n_tasks=2", "benchmark.train_samples_per_task=20", "benchmark.test_samples_per_task=10",
             "evaluation.curve_points=1", "evaluation.curve_test_samples=5", "training.epochs=1",
             "evaluation.batch_size=64"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Generated CIFAR-100 and Tiny ImageNet; a harness process that accepts them."""
    cifar = tmp_path_factory.mktemp("cifar")
    md5 = image_data.write_cifar100(cifar, train_per_class=5, test_per_class=2)
    tiny = tmp_path_factory.mktemp("tiny")
    image_data.write_tinyimagenet(tiny, train_per_class=2)
    with pytest.MonkeyPatch.context() as patch:
        image_data.cifar_md5_patch(tmp_path_factory.mktemp("site"), md5, patch)
        image_data.fresh_harness()
        yield {"split-cifar100": cifar, "split-tinyimagenet": tiny}
    image_data.fresh_harness()  # the next harness forgets the generated data


def _run(roots, preset: str, overrides: list[str], method: str = "naive", seed: int = 0, observers=()):
    protocol = apply_overrides(get_protocol(preset), overrides)
    registered = get_registry().get(method)
    hp = registered.method.parse_hyperparameters({})
    return run(RunRequest(protocol, registered, hp, seed, roots[protocol.benchmark.name],
                          observers=list(observers)))


class _Steps:
    """An Avalanche plugin noting each training step's output dtype and loss."""

    def __init__(self):
        from avalanche.core import SupervisedPlugin

        steps = self.steps = []

        class Note(SupervisedPlugin):
            def after_training_iteration(self, strategy, *args, **kwargs):
                steps.append((strategy.mb_output.dtype, strategy.loss.item()))

        self.plugin = Note()


def test_evaluate_a_split_cifar100_preset_end_to_end(cli, roots, tmp_path):
    overrides = ["benchmark.train_samples_per_task=10", "model.architecture=resnet18-reduced",
                 "training.epochs=1", "evaluation.curve_points=1", "evaluation.curve_test_samples=5"]
    args = ["evaluate", "naive", "--protocol", "scifar100-10-class", "--data-root", roots["split-cifar100"],
            "--out", tmp_path / "out", "--seeds", "0", "-q"]
    for text in overrides:
        args += ["--set", text]
    code, out, err = cli(*args)
    assert code == 0, err
    (path,) = sorted((tmp_path / "out").glob("*.json"))
    record = read_record(path)
    expected = apply_overrides(get_protocol("scifar100-10-class"), overrides)
    assert record.protocol_hash == expected.hash and record.protocol_name == "scifar100-10-class"
    assert len(record.accuracy_matrix) == 10 and all(len(row) == 10 for row in record.accuracy_matrix)
    assert record.samples_trained == [10] * 10
    assert record.protocol["training"]["augmentation"] == "crop-flip"
    assert record.protocol["model"]["architecture"] == "resnet18-reduced"
    assert record.device == "cpu" and record.protocol["training"]["precision"] == "fp32"
    assert "ACC" in out


@pytest.mark.parametrize("architecture", ["resnet18-reduced", "resnet18", "resnet32", "mlp"])
@pytest.mark.parametrize("scenario", ["class", "task"])
def test_every_backbone_trains_and_is_evaluated(roots, architecture, scenario):
    record = _run(roots, f"scifar100-10-{scenario}", TWO_TASKS + [f"model.architecture={architecture}"])
    assert record.protocol["benchmark"]["scenario"] == scenario
    assert record.protocol["model"]["architecture"] == architecture
    assert [p.steps for p in record.audit.phases] == [1, 1]  # one epoch of 20 images, batch 32
    assert all(p.update_checks > 0 for p in record.audit.phases)
    assert len(record.accuracy_matrix) == 2 and all(len(row) == 2 for row in record.accuracy_matrix)
    assert all(0.0 <= a <= 1.0 for row in record.accuracy_matrix for a in row)
    assert len(record.learning_curves) == 2 and all(c.accuracy for c in record.learning_curves)


@pytest.mark.parametrize("scenario", ["task", "class"])
def test_a_resnet_learns_the_generated_classes(roots, scenario):
    """Two tasks of 50 classes, 5 images each: well above chance after two epochs."""
    record = _run(roots, f"scifar100-10-{scenario}", [
        "benchmark.n_tasks=2", "benchmark.train_samples_per_task=250", "benchmark.test_samples_per_task=100",
        "evaluation.curve_points=1", "evaluation.curve_test_samples=20", "training.epochs=2",
        "training.lr=0.1", "model.architecture=resnet18-reduced"])
    chance = 1 / (100 if scenario == "class" else 50)
    assert record.accuracy_matrix[0][0] > 3 * chance and record.accuracy_matrix[1][1] > 3 * chance, \
        record.accuracy_matrix


def test_task_incremental_split_tiny_imagenet(roots):
    record = _run(roots, "stinyimagenet-10-task", ["benchmark.train_samples_per_task=40",
                                                   "model.architecture=resnet18-reduced",
                                                   "training.epochs=1", "evaluation.curve_points=1",
                                                   "evaluation.curve_test_samples=5"])
    assert len(record.accuracy_matrix) == 10 and record.samples_trained == [40] * 10
    assert record.protocol["benchmark"]["scenario"] == "task"
    assert record.protocol["training"]["augmentation"] == "crop-flip"
    # each test set has 20 val images, one per class of its 20-way head
    assert all(a * 20 == round(a * 20) for row in record.accuracy_matrix for a in row)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_the_cpu(roots, precision):
    base = TWO_TASKS + ["model.architecture=resnet18-reduced"]
    full_steps, mixed_steps = _Steps(), _Steps()
    full = _run(roots, "scifar100-10-class", base, observers=[full_steps.plugin])
    mixed = _run(roots, "scifar100-10-class", base + [f"training.precision={precision}"],
                 observers=[mixed_steps.plugin])
    again = _run(roots, "scifar100-10-class", base + [f"training.precision={precision}"])
    assert mixed.protocol["training"]["precision"] == precision and mixed.device == "cpu"
    assert mixed.protocol["hash"] != full.protocol["hash"]
    assert mixed.accuracy_matrix == again.accuracy_matrix  # reproducible
    # the forward really ran in the lower precision, and training took other values
    # (this protocol is too small for its accuracies to tell the two apart)
    lower = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert {dtype for dtype, _ in full_steps.steps} == {torch.float32}
    assert {dtype for dtype, _ in mixed_steps.steps} == {lower}
    assert len(mixed_steps.steps) == len(full_steps.steps) > 0
    assert [loss for _, loss in mixed_steps.steps] != [loss for _, loss in full_steps.steps]


def test_the_image_presets_follow_their_reference():
    for name in ("scifar100-10-class", "scifar100-10-task", "scifar100-20-class", "scifar100-20-task",
                 "stinyimagenet-10-class", "stinyimagenet-10-task"):
        protocol = PROTOCOLS[name]
        b, t = protocol.benchmark, protocol.training
        assert protocol.model.architecture == "resnet18"
        assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.batch_size) == ("sgd", 0.03, 0.0, 0.0, 32)
        assert t.augmentation == "crop-flip" and t.precision == "fp32"
        assert b.class_order == "fixed" and b.test_samples_per_task is None
        assert b.scenario == name.rsplit("-", 1)[1]
        assert b.train_samples_per_task * b.n_tasks == (50000 if b.name == "split-cifar100" else 100000)
        assert t.epochs == (50 if b.name == "split-cifar100" else 100)
    # the budgeted power-law environment is available on all of them
    for name in ("scifar100-10-class", "scifar100-20-task", "stinyimagenet-10-class"):
        protocol = apply_overrides(get_protocol(name), ["environment.kind=power-law"])
        assert protocol.env_matrix(0)[1][0] == round(0.25 * protocol.benchmark.train_samples_per_task)


@pytest.mark.parametrize("method", ["naive", "lwf", "replay", "icarl", "der", "agem"])
def test_class_incremental_baselines_pass_check_plugin_on_a_small_image_protocol(roots, method):
    from clbench.testing import check_method

    protocol = apply_overrides(get_protocol("scifar100-20-class"), [
        "benchmark.n_tasks=5", "benchmark.train_samples_per_task=100", "benchmark.test_samples_per_task=20",
        "model.architecture=resnet18-reduced", "training.epochs=1", "evaluation.curve_points=1",
        "evaluation.curve_test_samples=10", "evaluation.batch_size=100"])
    hyperparameters = {"icarl": {"memory_size": 50}, "replay": {"mem_size": 50}, "der": {"mem_size": 50},
                       "agem": {"patterns_per_exp": 10, "sample_size": 10}}.get(method, {})
    report = check_method(method, roots["split-cifar100"], protocol, hyperparameters=hyperparameters)
    assert report.passed, report.summary()
