"""`benchmark.inputs`: what the model sees of each pixel is part of the protocol.

clbench standardised every image with the dataset's usual statistics and said so only in
prose; van de Ven's code (and many MNIST papers) feed pixel / 255. The field makes the
choice explicit and hashed; at its default every earlier protocol and record keeps its hash.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.datasets import MNIST

from clbench.augment import BatchAugmentation, black_pixel
from clbench.datasets import NORMALISATION
from clbench.errors import ClbenchError
from clbench.presets import PROTOCOLS, get_protocol
from clbench.protocol import apply_overrides
from clbench.seeding import torch_generator
from clbench.tasks import load_tasks

SMALL = ["benchmark.train_samples_per_task=500", "benchmark.test_samples_per_task=100",
         "evaluation.curve_test_samples=100"]


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_the_default_keeps_every_hash_and_unit_interval_changes_it(name):
    protocol = get_protocol(name)
    assert protocol.benchmark.inputs == "standardised"
    assert apply_overrides(protocol, ["benchmark.inputs=standardised"]).hash == protocol.hash
    assert apply_overrides(protocol, ["benchmark.inputs=unit-interval"]).hash != protocol.hash


def test_unit_interval_permuted_mnist_is_pixel_over_255_permuted(data_root):
    protocol = apply_overrides(get_protocol("vdv-pmnist-domain"), [*SMALL, "benchmark.n_tasks=2"])
    unit = load_tasks(apply_overrides(protocol, ["benchmark.inputs=unit-interval"]).benchmark, data_root, seed=3)
    standardised = load_tasks(protocol.benchmark, data_root, seed=3)
    pixels = MNIST(str(data_root), train=True).data.reshape(60000, -1).float() / 255
    pool = torch.randperm(60000, generator=torch_generator(3, "pool", 0))[:500].sort().values
    permutation = torch.randperm(784, generator=torch_generator(3, "permutation", 0))
    assert torch.equal(unit[0].train_x.reshape(500, -1), pixels[pool][:, permutation])
    (mean,), (std,) = NORMALISATION["mnist"]
    for u, s in zip(unit, standardised):  # the same images, only scaled
        assert torch.allclose(s.train_x, (u.train_x - mean) / std, atol=1e-6)
        assert torch.allclose(s.test_x, (u.test_x - mean) / std, atol=1e-6)
        assert torch.equal(u.train_y, s.train_y) and torch.equal(u.test_y, s.test_y)


@pytest.mark.parametrize("scenario", ["task", "domain", "class"])
def test_unit_interval_split_mnist_in_every_scenario(data_root, scenario):
    protocol = apply_overrides(get_protocol(f"vdv-smnist-{scenario}"), [*SMALL, "benchmark.inputs=unit-interval"])
    tasks = load_tasks(protocol.benchmark, data_root, seed=0)
    for task in tasks:
        for x in (task.train_x, task.test_x):
            assert x.dtype == torch.float32 and x.min() == 0 and x.max() == 1
            assert (x == 0).float().mean() > 0.5  # MNIST's background is exactly 0


def test_a_black_pixel_is_zero_on_unit_interval_inputs():
    assert torch.equal(black_pixel("split-cifar100", "unit-interval"), torch.zeros(3))
    padding = BatchAugmentation("split-cifar100", 0, "cpu", inputs="unit-interval").fill  # crop-flip's padding
    assert torch.equal(padding, torch.zeros(3))
    mean, std = NORMALISATION["cifar100"]
    assert torch.allclose(black_pixel("split-cifar100"), -torch.tensor(mean) / torch.tensor(std))


def test_an_unknown_scaling_is_a_one_line_error(cli):
    with pytest.raises(ClbenchError, match="benchmark.inputs") as info:
        apply_overrides(get_protocol("smoke"), ["benchmark.inputs=raw"])
    assert "\n" not in str(info.value)
    code, out, err = cli("protocols", "show", "smoke", "--set", "benchmark.inputs=0-1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "benchmark.inputs" in err, err
