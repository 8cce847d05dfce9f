"""The training fast path: whole minibatches sliced out of the phase's tensors.

Avalanche's default loader fetches samples one at a time through several dataset layers
and collates them; for in-memory tensors that costs more than the model's own work (see
docs/performance.md). When a strategy would train on exactly the experience the harness
built (same tensors, no subset, no transforms, the stock data-loader construction), this
plugin swaps the loader for one that gathers each minibatch with a single index
operation. Anything else (a replay loader, a strategy's own loader, transforms, a
dataset a method adapted) is left untouched, so the fast path never changes what a method
trains on, only how fast the same samples arrive. Task labels are 0, except in the
task-incremental scenario, where each sample's label is its task of origin (as in the
experience, clbench.experiences). Training augmentation (clbench.augment) is applied to
the minibatches this loader yields, on the device, by the harness's `BatchAugmentation`.
"""

from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate
from torch.utils.data import DataLoader, RandomSampler


class TensorBatchLoader:
    """Yields [x, y, task] minibatches in exactly the order DataLoader(shuffle=True) would.

    torch's map-style DataLoader draws a base seed from the global RNG when iteration
    starts, then its RandomSampler draws a second one to seed a private generator for one
    randperm. Doing the same draws makes every epoch's sample order, and so every number a
    run produces, bit-identical to Avalanche's stock loader.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, batch_size: int,
                 shuffle: bool = True, drop_last: bool = False):
        self.x, self.y, self.t = x, y, t
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.y)
        torch.empty((), dtype=torch.int64).random_()  # the DataLoader iterator's base seed
        order = None
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            order = torch.randperm(n, generator=generator).to(self.x.device)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            if order is None:
                yield [self.x[start:start + self.batch_size], self.y[start:start + self.batch_size],
                       self.t[start:start + self.batch_size]]
            else:
                index = order[start:start + self.batch_size]
                yield [self.x[index], self.y[index], self.t[index]]


def _untouched(adapted, original) -> bool:
    """True when `adapted` serves exactly `original`'s tensors: no subset, no transforms."""
    try:
        flat, source = adapted._flat_data, original._flat_data
        if len(flat._datasets) != 1 or flat._datasets[0] is not source._datasets[0]:
            return False
        if flat._indices is not None:
            return False
        groups = (flat._transform_groups, flat._frozen_transform_groups)
        return all(not any(g.transform_groups.values()) for g in groups)
    except AttributeError:  # not the dataset structure this check knows: stay on the safe side
        return False


class TensorFastPath(SupervisedPlugin):
    """Harness plugin: replaces the stock training loader when that is provably equivalent."""

    def __init__(self, device, task_aware: bool = False):
        super().__init__()
        self.device = device
        self.task_aware = task_aware
        # inputs and targets only: a sample's task of origin stays with the harness, except
        # in the task-incremental scenario, where it is the sample's task label
        self._xy = None
        self._origin = None
        self.used: list[bool] = []

    def begin_phase(self, phase, data) -> None:
        """Called by the runner with the phase's tensors before training starts."""
        self._xy = (data.x, data.y)
        self._origin = data.origin if self.task_aware else None

    def before_training_exp(self, strategy, *args, **kwargs):
        use = self._eligible(strategy)
        self.used.append(use)
        if use:
            x = self._xy[0].to(self.device, non_blocking=True)
            y = self._xy[1].to(self.device, non_blocking=True)
            t = torch.zeros_like(y) if self._origin is None else self._origin.to(self.device, non_blocking=True)
            strategy.dataloader = TensorBatchLoader(
                x, y, t, strategy.dataloader.batch_size, shuffle=True,
                drop_last=strategy.dataloader.drop_last,
            )

    def _eligible(self, strategy) -> bool:
        if self._xy is None:
            return False
        if type(strategy).make_train_dataloader is not SupervisedTemplate.make_train_dataloader:
            return False
        loader = strategy.dataloader
        if type(loader) is not DataLoader or loader.num_workers or loader.batch_size is None:
            return False
        sampler = loader.sampler
        if type(sampler) is not RandomSampler or sampler.replacement or sampler.generator is not None:
            return False
        if loader.generator is not None or sampler.num_samples != len(self._xy[1]):
            return False
        if len(strategy.adapted_dataset) != len(self._xy[1]):
            return False
        return _untouched(strategy.adapted_dataset, strategy.experience.dataset)
