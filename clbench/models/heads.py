"""The multi-head network of task-incremental protocols: one linear head per task.

`MultiHeadNetwork` is an Avalanche `MultiTaskModule`, so Avalanche's `avalanche_forward`
(used by every strategy on task-aware experiences, and by LwF, DER, ER-ACE, GEM and
A-GEM on their memories) calls it with each sample's task label. Unlike Avalanche's
`MultiHeadClassifier`, whose heads grow as task labels appear, every head exists from the
start: the harness builds the same network in every process from the protocol alone (a
state_dict always fits it), and a head that no sample of a minibatch uses takes no part in
that minibatch's graph, so its parameters get no gradient and optimizers skip them, as
with separate `nn.Linear` heads. The trunk runs once per minibatch over all its samples
(BatchNorm sees the whole minibatch), then each sample goes through its task's head.

Importing this module imports Avalanche (about 7 s once per process); only
task-incremental protocols do.
"""

from __future__ import annotations

import torch
from avalanche.models import MultiTaskModule
from torch import nn


class TaskHeads(nn.Module):
    """`n_heads` linear heads of `n_classes` outputs each; `forward(features, task_labels)`."""

    def __init__(self, in_features: int, n_heads: int, n_classes: int):
        super().__init__()
        self.in_features, self.n_classes = in_features, n_classes
        self.heads = nn.ModuleList(nn.Linear(in_features, n_classes) for _ in range(n_heads))

    def forward(self, features: torch.Tensor, task_labels) -> torch.Tensor:
        if isinstance(task_labels, int):
            return self.heads[task_labels](features)
        tasks = torch.unique(task_labels).tolist()
        if len(tasks) == 1:
            return self.heads[tasks[0]](features)
        pieces = [(task_labels == t).nonzero().squeeze(1) for t in tasks]
        outputs = [self.heads[t](features[index]) for t, index in zip(tasks, pieces)]
        out = outputs[0].new_empty(len(features), self.n_classes)
        for index, output in zip(pieces, outputs):
            out[index] = output
        return out


class MultiHeadNetwork(MultiTaskModule):
    """A trunk (`features`) and one head per task (`classifier`, a `TaskHeads`)."""

    def __init__(self, features: nn.Module, classifier: TaskHeads, flatten: bool):
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.flatten = flatten

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x.flatten(1) if self.flatten else x)

    def forward(self, x: torch.Tensor, task_labels=None, return_features: bool = False):
        """Each sample through its task's head (every head's output when `task_labels` is
        None); with `return_features`, also the trunk's output, so a method that needs other
        heads (LwF) reads them without a second forward pass."""
        if task_labels is None:
            return self.forward_all_tasks(x)
        features = self._features(x)
        out = self.classifier(features, task_labels)
        return (out, features) if return_features else out

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        return self.classifier(self._features(x), int(task_label))

    def forward_all_tasks(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Every head's output (LwF distils the heads of the tasks it has seen)."""
        features = self._features(x)
        return {t: head(features) for t, head in enumerate(self.classifier.heads)}
