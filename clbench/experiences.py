"""Phase data as Avalanche experiences, built straight from tensors.

Each phase becomes one `DatasetExperience` whose dataset is a tensor-backed Avalanche
classification dataset (no per-sample transforms). It belongs to a train stream holding
only that experience: a method can reach nothing beyond the data of its current phase;
`current_experience` is the phase index.

Task labels depend on the scenario (docs/scenarios.md):

- domain- and class-incremental: 0 for every sample. Those scenarios give methods no task
  identity, so the experience is not "task-aware" in Avalanche's sense (no `task_labels`
  attribute: plain data loader, single-head forward).
- task-incremental: each sample's task label is its task of origin (`PhaseData.origin`),
  which that scenario, and only that one, gives to the method, at training and at test
  time. The experience is task-aware (`task_labels`, and `task_label` when it holds one
  task), so Avalanche strategies call the harness's multi-head network with the labels.
  Avalanche would then train through a `TaskBalancedDataLoader`, which oversamples the
  smaller tasks of a phase: that would change the environment's counts and break the
  training budget, so `PlainLoader` gives such strategies the plain shuffled loader they
  build for any other experience.
"""

from __future__ import annotations

from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.scenarios.generic_scenario import EagerCLStream
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
from avalanche.core import SupervisedPlugin

from .tasks import PhaseData


def make_experience(data: PhaseData, phase: int, seen_before: set[int], all_classes: set[int],
                    task_aware: bool = False):
    """The Avalanche experience for one phase's training data (task labels if `task_aware`)."""
    task_labels = data.origin.tolist() if task_aware else 0
    dataset = _make_taskaware_tensor_classification_dataset(
        data.x, data.y, targets=data.y, task_labels=task_labels
    )
    experience = DatasetExperience(dataset=dataset, current_experience=phase)
    stream = EagerCLStream("train", [experience], set_stream_info=False)
    experience.origin_stream = stream
    classes = set(data.y.unique().tolist())
    experience.classes_in_this_experience = sorted(classes)
    experience.previous_classes = sorted(seen_before)
    experience.classes_seen_so_far = sorted(seen_before | classes)
    experience.future_classes = sorted(all_classes - seen_before - classes)
    if task_aware:  # as avalanche.benchmarks.scenarios.task_aware.with_task_labels sets them
        labels = sorted(set(task_labels))
        experience.task_labels = labels
        if len(labels) == 1:
            experience.task_label = labels[0]
    return experience


class PlainLoader(SupervisedPlugin):
    """Harness plugin: the stock training loader of a task-aware experience, unbalanced.

    Replaces the `TaskBalancedDataLoader` that `SupervisedTemplate.make_train_dataloader`
    builds for task-aware experiences by the `DataLoader` it builds for all others (same
    dataset, batch size, shuffling and collate function), so every scenario trains on the
    phase's samples exactly as the environment drew them. Loaders a strategy or plugin
    builds itself (replay's, GDumb's) are left alone.
    """

    def before_training_exp(self, strategy, *args, **kwargs):
        from avalanche.benchmarks.utils.data_loader import TaskBalancedDataLoader
        from avalanche.training.templates import SupervisedTemplate
        from torch.utils.data import DataLoader

        if type(strategy.dataloader) is not TaskBalancedDataLoader:
            return
        if type(strategy).make_train_dataloader is not SupervisedTemplate.make_train_dataloader:
            return
        arguments = strategy._obtain_common_dataloader_parameters(
            batch_size=strategy.train_mb_size, num_workers=0, shuffle=True, pin_memory=None,
            persistent_workers=False, drop_last=False)
        strategy.dataloader = DataLoader(strategy.adapted_dataset, **arguments)
