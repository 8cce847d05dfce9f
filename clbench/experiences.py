"""Phase data as Avalanche experiences, built straight from tensors.

Each phase becomes one `DatasetExperience` whose dataset is a tensor-backed Avalanche
classification dataset (no per-sample transforms). It belongs to a train stream holding
only that experience: a method can reach nothing beyond the data of its current phase.
Task labels are 0 throughout (domain- and class-incremental scenarios give methods no
task identity), so the experience is not "task-aware" in Avalanche's sense (no
`task_labels` attribute: plain data loader, single-head forward); `current_experience` is
the phase index.
"""

from __future__ import annotations

from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.scenarios.generic_scenario import EagerCLStream
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset

from .tasks import PhaseData


def make_experience(data: PhaseData, phase: int, seen_before: set[int], all_classes: set[int]):
    """The Avalanche experience for one phase's training data."""
    dataset = _make_taskaware_tensor_classification_dataset(
        data.x, data.y, targets=data.y, task_labels=0
    )
    experience = DatasetExperience(dataset=dataset, current_experience=phase)
    stream = EagerCLStream("train", [experience], set_stream_info=False)
    experience.origin_stream = stream
    classes = set(data.y.unique().tolist())
    experience.classes_in_this_experience = sorted(classes)
    experience.previous_classes = sorted(seen_before)
    experience.classes_seen_so_far = sorted(seen_before | classes)
    experience.future_classes = sorted(all_classes - seen_before - classes)
    return experience
