"""End to end on real MNIST: records, reproducibility, and what methods are handed."""

import json

import pytest
import torch

from clbench.experiences import make_experience
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.records import read_record
from clbench.seeding import torch_generator
from clbench.tasks import load_tasks, phase_data


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, data_root):
    """`clbench evaluate naive --protocol smoke --seeds 0 1`, twice, into two folders."""
    from clbench.cli import main

    folders = []
    for attempt in range(2):
        out = tmp_path_factory.mktemp(f"smoke{attempt}")
        code = main(["evaluate", "naive", "--protocol", "smoke", "--seeds", "0", "1",
                     "--data-root", str(data_root), "--out", str(out), "-q"])
        assert code == 0
        folders.append(out)
    return folders


def _records(folder):
    return {r.seed: r for r in map(read_record, sorted(folder.glob("*.json")))}


def test_writes_one_valid_record_per_seed(smoke_runs):
    records = _records(smoke_runs[0])
    assert set(records) == {0, 1}
    protocol = get_protocol("smoke")
    for seed, record in records.items():
        assert record.protocol["hash"] == protocol.hash and record.protocol["name"] == "smoke"
        assert record.method.name == "naive" and record.method.plugin == "clbench-baselines"
        assert len(record.accuracy_matrix) == 3 and all(len(r) == 3 for r in record.accuracy_matrix)
        assert record.environment_matrix == protocol.env_matrix(seed)
        assert set(record.versions.model_dump()) == {"python", "torch", "torchvision", "avalanche", "clbench"}
        assert record.wall_time_s > 0 and record.device == "cpu"


def test_record_has_the_required_json_keys(smoke_runs):
    data = json.loads(next(smoke_runs[0].glob("*.json")).read_text())
    for key in ["accuracy_matrix", "untrained_accuracy", "metrics", "learning_curves", "protocol",
                "method", "seed", "versions", "device", "wall_time_s"]:
        assert key in data
    assert {"acc", "bwt", "forgetting", "fwt", "learning_accuracy", "forward_facilitation"} <= set(data["metrics"])
    assert {"name", "plugin", "version", "hyperparameters"} <= set(data["method"])
    assert {"name", "hash"} <= set(data["protocol"])


def test_accuracies_are_real_mnist_accuracies(smoke_runs):
    for record in _records(smoke_runs[0]).values():
        R = record.accuracy_matrix
        assert all(R[j][j] > 0.7 for j in range(3)), R  # each task learned in its own phase
        assert all(a < 0.3 for a in record.untrained_accuracy)  # untrained is near chance
        assert R[0][2] < 0.3  # a task not yet trained on stays near chance


def test_same_command_gives_identical_numbers(smoke_runs):
    first, second = _records(smoke_runs[0]), _records(smoke_runs[1])
    for seed in (0, 1):
        assert first[seed].accuracy_matrix == second[seed].accuracy_matrix
        assert first[seed].learning_curves == second[seed].learning_curves
        assert first[seed].run_id == second[seed].run_id
    assert first[0].accuracy_matrix != first[1].accuracy_matrix


def test_learning_curves_and_budget(smoke_runs):
    protocol = get_protocol("smoke")
    record = _records(smoke_runs[0])[0]
    for phase, curve in enumerate(record.learning_curves):
        expected = sum(record.environment_matrix[phase]) * protocol.training.epochs
        assert record.samples_trained[phase] == expected
        assert curve.samples[0] == 0 and curve.samples[-1] == expected
        assert len(curve.samples) == protocol.evaluation.curve_points + 1
        assert curve.accuracy[-1] > curve.accuracy[0]
    ff = record.metrics.forward_facilitation
    assert len(ff.auc) == 3 and all(0 < a <= 1 for a in ff.auc)


def test_cli_prints_a_metrics_table(cli, data_root, tmp_path):
    code, out, err = cli("evaluate", "naive", "--protocol", "smoke", "--seeds", "3",
                         "--set", "training.epochs=1", "--data-root", data_root, "--out", tmp_path, "-q")
    assert code == 0
    assert "ACC" in out and "Forgetting" in out and "after phase 2" in out
    assert "seed 3: ACC" in err
    [path] = tmp_path.glob("*.json")
    record = read_record(path)
    assert record.protocol_overrides == ["training.epochs=1"]
    assert record.protocol["hash"] != get_protocol("smoke").hash


def test_permuted_tasks_are_pixel_permutations_of_real_mnist(data_root):
    from torchvision.datasets import MNIST

    protocol = apply_overrides(get_protocol("smoke"), ["benchmark.train_samples_per_task=60000"])
    tasks = load_tasks(protocol.benchmark, data_root, seed=5)
    raw = MNIST(str(data_root), train=True).data[:100].reshape(100, -1).float() / 255
    raw = (raw - 0.1307) / 0.3081
    for t, task in enumerate(tasks):
        permutation = torch.randperm(784, generator=torch_generator(5, "permutation", t))
        assert torch.allclose(task.train_x[:100].reshape(100, -1), raw[:, permutation], atol=1e-6)
    assert not torch.equal(tasks[0].train_x[:5], tasks[1].train_x[:5])


def test_phase_experience_has_environment_counts_and_true_targets(data_root):
    protocol = get_protocol("smoke")
    tasks = load_tasks(protocol.benchmark, data_root, seed=0)
    counts = protocol.env_matrix(0)[2]
    data = phase_data(tasks, counts, phase=2, seed=0)
    assert [int((data.origin == t).sum()) for t in range(3)] == counts
    # rehearsal draws are without replacement: no duplicated rows within a task
    for t in range(3):
        rows = data.x[data.origin == t]
        assert len(torch.unique(rows, dim=0)) == len(rows)
    experience = make_experience(data, 2, set(range(10)), set(range(10)))
    dataset = experience.dataset
    assert len(dataset) == sum(counts) and experience.current_experience == 2
    assert torch.equal(torch.as_tensor(list(dataset.targets)), data.y)
    assert set(dataset.targets_task_labels) == {0}
    x, y, t = dataset[7]
    assert torch.equal(x, data.x[7]) and y == data.y[7] and t == 0
    assert list(experience.origin_stream) == [experience]  # nothing beyond this phase


def test_split_mnist_tasks_hold_their_digits(data_root):
    protocol = get_protocol("smnist-5")
    tasks = load_tasks(protocol.benchmark, data_root, seed=0)
    assert [t.classes for t in tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    for task in tasks:
        assert set(task.train_y.tolist()) == set(task.classes) == set(task.test_y.tolist())
        assert len(task.train_y) == protocol.benchmark.train_samples_per_task
