"""Training-time augmentation as batched tensor operations on the run's device.

`training.augmentation=crop-flip` is the standard CIFAR / Tiny ImageNet recipe, as
torchvision's `RandomCrop(size, padding=4)` followed by `RandomHorizontalFlip()` (Avalanche's
`SplitCIFAR100` default train transform, Mammoth's seq-cifar100 and seq-tinyimg): pad the
image with 4 black pixels on each side, cut a window of the original size at a uniformly
drawn offset (81 positions), then mirror it left-right with probability 1/2. clbench's
images are already scaled (`benchmark.inputs`), so "black" is each channel's scaled 0
((0 - mean) / std when standardised, 0 on unit-interval inputs), which makes the result identical to torchvision's transforms applied to the raw image
before normalising (tests/test_augment.py checks it pixel for pixel and in distribution).

`crop_flip` does a whole minibatch with one `gather`, no per-sample Python. The
`BatchAugmentation` harness plugin applies it in `before_forward` to the minibatch the
strategy is about to train on, whatever loader built it: the fast path's slices, replay and
GDumb buffers mixed into the minibatch, and ER-ACE's separate buffer minibatch. Methods
that draw memory samples outside the training forward (GEM's and A-GEM's reference
gradients, DER's stored logits) see them unaugmented, as in Avalanche.

Draws come from a generator on the device, seeded per phase from the run seed
(`derive_seed(seed, "augment", phase)`), so a run is reproducible, a resumed run draws what
the uninterrupted one drew, and no other random stream moves.
"""

from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin

from .datasets import input_statistics
from .seeding import derive_seed
from .tasks import RAW_DATASET

#: Zero padding on each side, in pixels (torchvision's `RandomCrop(..., padding=4)`).
PADDING = 4


def draw(n: int, padding: int, generator: torch.Generator, device) -> tuple[torch.Tensor, ...]:
    """Per-sample crop offsets (top, left) in [0, 2 * padding] and flips (probability 1/2)."""
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return top, left, flip


def crop_flip(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor,
              padding: int, fill: torch.Tensor) -> torch.Tensor:
    """Crop each image of `x` (N, C, H, W) at (top, left) of its `padding`-padded self, filled
    with `fill` (C,), then mirror the images where `flip`; one gather for the whole batch."""
    n, channels, height, width = x.shape
    rows = top[:, None] - padding + torch.arange(height, device=x.device)  # source row per output row
    cols = left[:, None] - padding + torch.arange(width, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    index = rows.clamp(0, height - 1)[:, :, None] * width + cols.clamp(0, width - 1)[:, None, :]
    flat = x.reshape(n, channels, height * width)
    out = flat.gather(2, index.reshape(n, 1, -1).expand(n, channels, -1)).view(n, channels, height, width)
    return torch.where(inside[:, None], out, fill.to(x.dtype).view(1, channels, 1, 1))


def black_pixel(benchmark_name: str, inputs: str = "standardised") -> torch.Tensor:
    """A black pixel as the model sees it, per channel: (0 - mean) / std after the
    dataset's standardisation, 0 on unit-interval inputs (`benchmark.inputs`)."""
    mean, std = input_statistics(RAW_DATASET[benchmark_name], inputs)
    return (0 - torch.tensor(mean)) / torch.tensor(std)


class BatchAugmentation(SupervisedPlugin):
    """Harness plugin: crop-flip every training minibatch on the device (see the module doc)."""

    def __init__(self, benchmark_name: str, seed: int, device, channels_last: bool = False,
                 inputs: str = "standardised"):
        super().__init__()
        self.seed = seed
        self.device = torch.device(device)
        self.fill = black_pixel(benchmark_name, inputs).to(self.device)
        self.channels_last = channels_last
        self.generator: torch.Generator | None = None
        self.augmented = 0  # samples augmented so far (for tests and benchmarks)

    def begin_phase(self, phase: int, data) -> None:
        """Called by the runner before each phase: a fresh stream seeded by (seed, phase)."""
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(derive_seed(self.seed, "augment", phase))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.generator is None:
            raise RuntimeError("BatchAugmentation.begin_phase was not called")
        if x.device != self.device:
            x = x.to(self.device)
        top, left, flip = draw(len(x), PADDING, self.generator, self.device)
        out = crop_flip(x, top, left, flip, PADDING, self.fill)
        self.augmented += len(x)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out

    def before_forward(self, strategy, *args, **kwargs):
        strategy.mbatch[0] = self.apply(strategy.mbatch[0])
        if getattr(strategy, "replay_loader", None) is not None and \
                isinstance(getattr(strategy, "mb_buffer_x", None), torch.Tensor):
            strategy.mb_buffer_x = self.apply(strategy.mb_buffer_x)  # ER-ACE's buffer minibatch
