"""Batched on-device augmentation (clbench.augment): torchvision's crops and flips, reproducibly.

- pixel for pixel: for every one of the 162 (offset, flip) choices, `crop_flip` on a
  standardised image equals torchvision's `pad -> crop -> hflip -> ToTensor -> Normalize`
  on the raw PIL image;
- in distribution: offsets and flips drawn by `BatchAugmentation` and by torchvision's
  `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()` (per sample, as Avalanche's
  SplitCIFAR100 train transform) are both uniform over the 162 choices and
  indistinguishable from each other (chi-square), a test that rejects a sampler off by one;
- reproducible: the same seed and phase draw the same crops; a run with augmentation gives
  the same record twice, another record than without, and moves no global RNG;
- every minibatch the model trains on is augmented, replay samples included.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import chi2_contingency, chisquare
from torchvision import transforms
from torchvision.transforms import functional as TF

from clbench.augment import PADDING, BatchAugmentation, crop_flip, draw, black_pixel
from clbench.datasets import NORMALISATION
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.runner import RunRequest, run

MEAN, STD = NORMALISATION["cifar100"]
CELLS = (2 * PADDING + 1) ** 2 * 2  # 81 offsets x 2 flips


def _standardise(raw: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> as clbench's tasks hold it."""
    return (raw.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def _torchvision(raw_chw: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    image = Image.fromarray(raw_chw.permute(1, 2, 0).numpy())
    image = TF.crop(TF.pad(image, PADDING, fill=0), top, left, 32, 32)
    if flip:
        image = TF.hflip(image)
    return TF.normalize(TF.to_tensor(image), MEAN, STD)


def test_every_crop_and_flip_equals_torchvision_pixel_for_pixel():
    raw = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    choices = [(t, l, f) for t in range(2 * PADDING + 1) for l in range(2 * PADDING + 1) for f in (False, True)]
    top, left, flip = (torch.tensor([c[i] for c in choices]) for i in range(3))
    ours = crop_flip(_standardise(raw).expand(len(choices), -1, -1, -1), top, left, flip,
                     PADDING, black_pixel("split-cifar100"))
    for k, (t, l, f) in enumerate(choices):
        expected = _torchvision(raw[0], t, l, f)
        assert (ours[k] - expected).abs().max() < 1e-5, (t, l, f)
    # the padding is black: the top-left crop without flip starts with 4 rows of it
    black = (torch.zeros(3) - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(ours[0, :, :PADDING, :], black.view(3, 1, 1).expand(3, PADDING, 32))


def _coded_image() -> torch.Tensor:
    """Channel 0 holds row + 1, channel 1 column + 1 (padding reads 0): a crop tells its offset."""
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    return torch.stack([rows + 1, cols + 1, torch.zeros_like(rows)]).to(torch.uint8)


def _decode(crops: torch.Tensor) -> np.ndarray:
    """(top, left, flip) of crops of the coded image, as one cell index per crop."""
    row = crops[:, 0, 16, 16].round().long() - 1  # the centre is never padding
    here, right = crops[:, 1, 16, 16].round().long() - 1, crops[:, 1, 16, 17].round().long() - 1
    flip = right < here
    top = row - 16 + PADDING
    left = torch.where(flip, here - 15 + PADDING, here - 16 + PADDING)
    assert ((top >= 0) & (top <= 2 * PADDING) & (left >= 0) & (left <= 2 * PADDING)).all()
    return ((top * (2 * PADDING + 1) + left) * 2 + flip.long()).numpy()


def _counts(cells: np.ndarray) -> np.ndarray:
    return np.bincount(cells, minlength=CELLS)


def _same_distribution(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """p-values: a uniform, b uniform, a and b from one distribution."""
    return chisquare(a).pvalue, chisquare(b).pvalue, chi2_contingency(np.stack([a, b])).pvalue


N_DRAWS = 8100  # 50 per cell


@pytest.fixture(scope="module")
def torchvision_cells():
    coded = Image.fromarray(_coded_image().permute(1, 2, 0).numpy())
    pipeline = transforms.Compose([transforms.RandomCrop(32, padding=PADDING), transforms.RandomHorizontalFlip(),
                                   transforms.PILToTensor()])
    torch.manual_seed(20240601)
    crops = torch.stack([pipeline(coded) for _ in range(N_DRAWS)]).float()
    return _counts(_decode(crops))


def _ours(sampler=draw) -> np.ndarray:
    coded = _coded_image().float().unsqueeze(0).expand(N_DRAWS, -1, -1, -1)
    generator = torch.Generator().manual_seed(7)
    top, left, flip = sampler(N_DRAWS, PADDING, generator, "cpu")
    return _counts(_decode(crop_flip(coded, top, left, flip, PADDING, torch.zeros(3))))


def test_crops_and_flips_are_distributed_as_torchvision_draws_them(torchvision_cells):
    ours = _ours()
    p_torchvision, p_ours, p_same = _same_distribution(torchvision_cells, ours)
    assert min(p_torchvision, p_ours, p_same) > 1e-3, (p_torchvision, p_ours, p_same)
    assert abs(ours[1::2].sum() / N_DRAWS - 0.5) < 0.02  # flips


def test_the_distribution_test_rejects_a_sampler_off_by_one(torchvision_cells):
    """The same test, given offsets in [0, 7] instead of [0, 8], fails decisively."""
    def off_by_one(n, padding, generator, device):
        top, left, flip = draw(n, padding, generator, device)
        return top.clamp(max=2 * padding - 1), left, flip

    def never_flips(n, padding, generator, device):
        top, left, _ = draw(n, padding, generator, device)
        return top, left, torch.zeros(n, dtype=torch.bool)

    for sampler in (off_by_one, never_flips):
        assert min(_same_distribution(torchvision_cells, _ours(sampler))) < 1e-6


def _augmenter(seed: int, phase: int) -> BatchAugmentation:
    plugin = BatchAugmentation("split-cifar100", seed, "cpu")
    plugin.begin_phase(phase, None)
    return plugin


def test_draws_are_seeded_by_run_seed_and_phase_and_leave_global_rngs_alone():
    x = torch.randn(64, 3, 32, 32)
    state = torch.get_rng_state()
    first = _augmenter(0, 1).apply(x)
    assert torch.equal(first, _augmenter(0, 1).apply(x))
    assert not torch.equal(first, _augmenter(0, 2).apply(x))
    assert not torch.equal(first, _augmenter(1, 1).apply(x))
    assert torch.equal(torch.get_rng_state(), state)
    assert first.shape == x.shape and first.dtype == x.dtype


def test_the_minibatch_and_er_aces_buffer_minibatch_are_augmented():
    plugin = _augmenter(0, 0)
    x, buffer = torch.randn(8, 3, 32, 32), torch.randn(4, 3, 32, 32)
    strategy = SimpleNamespace(mbatch=[x, torch.zeros(8), torch.zeros(8)], replay_loader=object(),
                               mb_buffer_x=buffer)
    plugin.before_forward(strategy)
    assert strategy.mbatch[0].shape == x.shape and not torch.equal(strategy.mbatch[0], x)
    assert not torch.equal(strategy.mb_buffer_x, buffer)
    assert plugin.augmented == 12
    without_replay = SimpleNamespace(mbatch=[x], replay_loader=None, mb_buffer_x=buffer)
    plugin.before_forward(without_replay)
    assert without_replay.mb_buffer_x is buffer  # a stale buffer batch is left alone


# --------------------------------------------------------------------------------------
# whole runs, on real MNIST

TINY = ["benchmark.train_samples_per_task=300", "benchmark.test_samples_per_task=200",
        "evaluation.curve_test_samples=100", "evaluation.curve_points=2", "model.hidden=[64]"]


def _run(data_root, method: str, extra: list[str], seed: int = 0, observers=()):
    protocol = apply_overrides(get_protocol("smnist-5"), TINY + extra)
    registered = get_registry().get(method)
    return run(RunRequest(protocol, registered, registered.method.parse_hyperparameters({}), seed,
                          data_root, observers=list(observers)))


def test_an_augmented_run_is_reproducible_and_differs_from_an_unaugmented_one(data_root):
    augmented = _run(data_root, "naive", ["training.augmentation=crop-flip"])
    again = _run(data_root, "naive", ["training.augmentation=crop-flip"])
    plain = _run(data_root, "naive", [])
    assert augmented.accuracy_matrix == again.accuracy_matrix
    assert augmented.learning_curves == again.learning_curves
    assert augmented.accuracy_matrix != plain.accuracy_matrix
    assert augmented.protocol["hash"] != plain.protocol["hash"]
    assert augmented.protocol["training"]["augmentation"] == "crop-flip"


class _ModelInputs:
    """A harness observer that watches what the model itself receives in training forwards
    (a forward pre-hook, so after the augmentation) and every sample the harness handed over."""

    def __init__(self):
        from clbench.testing import _row_keys

        self.keys = _row_keys
        self.given: set[bytes] = set()
        self.forwards: list[tuple[int, int]] = []  # (batch size, samples identical to a given one)
        self._hooked = None

    def begin_phase(self, phase, data):
        self.given.update(self.keys(data.x))

    def before_training_exp(self, strategy, *args, **kwargs):
        if self._hooked is not strategy.model:
            strategy.model.register_forward_pre_hook(self._hook)
            self._hooked = strategy.model

    def _hook(self, module, args):
        if module.training:
            x = args[0]
            self.forwards.append((len(x), sum(k in self.given for k in self.keys(x))))

    def __getattr__(self, name):  # every other plugin callback: nothing to do
        if name.startswith(("before_", "after_")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


@pytest.mark.parametrize("augmentation", ["crop-flip", "none"])
def test_replayed_samples_reach_the_model_augmented(data_root, augmentation):
    """replay mixes buffer samples into each minibatch: with crop-flip almost nothing the
    model trains on is a sample as handed over (only an unshifted, unflipped crop is, 1 in
    162); without augmentation everything is."""
    watcher = _ModelInputs()
    _run(data_root, "replay", [f"training.augmentation={augmentation}"], observers=[watcher])
    batch = get_protocol("smnist-5").training.batch_size
    assert any(size > batch for size, _ in watcher.forwards)  # minibatches with buffer samples
    total = sum(size for size, _ in watcher.forwards)
    identical = sum(same for _, same in watcher.forwards)
    if augmentation == "none":
        assert identical == total
    else:
        assert identical < 0.03 * total
