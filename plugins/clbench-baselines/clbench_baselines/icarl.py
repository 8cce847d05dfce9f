"""iCaRL (Rebuffi et al., CVPR 2017), class-incremental only, through Avalanche's `ICaRL`.

Avalanche's `ICaRL` wraps the harness network's two parts in a `TrainEvalModel`: the
feature extractor (`ctx.model.features`) with the linear head (`ctx.model.classifier`)
for training, and a nearest-mean-of-exemplars `NCMClassifier` for evaluation. So
`strategy.model`, which the harness measures, returns in eval mode one score per class
(minus the distance of the normalised features to each class mean), and the harness's
argmax is iCaRL's nearest-mean prediction. Two adaptations make it run on clbench's
experiences; neither changes the algorithm:

- Avalanche 0.6's `_ICaRLPlugin` reads the class order from `experience.benchmark`
  (`n_classes_per_exp`, `classes_order`), which clbench's stand-alone experiences do not
  have. `_ClassTimeline` supplies it from what each experience does carry
  (`classes_in_this_experience`, `previous_classes`) and the protocol's class count.
- The NCM classifier holds no class means until the end of the first phase. The factory
  gives it a zero mean for every class, so the untrained model (and the learning curve
  inside phase 0) predicts class 0 for every input instead of failing. After each phase
  the class means are recomputed from the exemplars; inside a phase, the curve measures
  the previous phase's means, as iCaRL itself would.

iCaRL uses its own loss (sigmoid + binary cross-entropy with distillation targets for
old classes, `ICaRLLossPlugin`), not the harness's criterion, as Avalanche requires.
Like Avalanche's loss, it assumes old classes do not come back: in an environment that
rehearses old tasks, their samples get distillation targets rather than their labels.
"""

from __future__ import annotations

import math

from types import SimpleNamespace

from pydantic import Field

from clbench import Method, StrategyContext

from ._base import Hyperparameters


class ICaRLHyperparameters(Hyperparameters):
    """iCaRL with a fixed total memory of K exemplars (``fixed_memory=True``).

    Default ``memory_size=2000`` is the paper's K (CIFAR-100), also used by Avalanche's
    examples/icarl.py and continual-learning-baselines' experiments/split_cifar100/icarl.py.
    With ``fixed_memory=True`` Avalanche keeps ``ceil(memory_size / classes seen)``
    herding-selected exemplars per class (at most 1000 per class: its herding loop stops
    after 1000 steps); no ``buffer_transform`` is applied (clbench data are tensors and
    have no augmentation).
    """

    memory_size: int = Field(2000, gt=0, description="total exemplar memory K")


def icarl_exemplars(hp: ICaRLHyperparameters, n_tasks: int, n_classes: int) -> int:
    """The most exemplars Avalanche's iCaRL holds at any phase.

    With c classes seen it keeps ceil(K / c) exemplars per class (at most 1000 each), so
    the memory can exceed K by up to c - 1 samples (2004 for K=2000 after 6 classes).
    """
    per_task = n_classes // n_tasks
    return max(c * min(math.ceil(hp.memory_size / c), 1000)
               for c in (per_task * (p + 1) for p in range(n_tasks)))


def _timeline_plugin(n_classes: int):
    from avalanche.core import SupervisedPlugin

    class _ClassTimeline(SupervisedPlugin):
        """Gives each experience the `benchmark` view Avalanche's iCaRL plugin reads.

        Must run before `_ICaRLPlugin`: it is added to the plugin list first, and sets the
        view in `before_train_dataset_adaptation`, the earliest per-phase callback.
        """

        def __init__(self):
            super().__init__()
            self.new_classes_by_phase: list[list[int]] = []

        def before_train_dataset_adaptation(self, strategy, **kwargs):
            experience = strategy.experience
            previous = set(experience.previous_classes)
            self.new_classes_by_phase.append(
                sorted(set(experience.classes_in_this_experience) - previous))
            seen = [c for phase in self.new_classes_by_phase for c in phase]
            unseen = [c for c in range(n_classes) if c not in set(seen)]
            counts = [len(phase) for phase in self.new_classes_by_phase]
            experience.benchmark = SimpleNamespace(
                n_classes_per_exp=counts + ([len(unseen)] if unseen else []),
                classes_order=seen + unseen,
            )

    return _ClassTimeline()


def make_icarl(ctx: StrategyContext, hp: ICaRLHyperparameters):
    """`avalanche.training.ICaRL` on the harness network's features and classifier."""
    from avalanche.training.supervised import ICaRL

    kwargs = ctx.strategy_kwargs()
    kwargs.pop("model")
    kwargs.pop("criterion")  # iCaRL brings its own loss
    kwargs["plugins"].append(_timeline_plugin(ctx.n_classes))
    strategy = ICaRL(
        feature_extractor=ctx.model.features,
        classifier=ctx.model.classifier,
        memory_size=hp.memory_size,
        buffer_transform=None,
        fixed_memory=True,
        **kwargs,
    )
    strategy.model.eval_classifier.init_missing_classes(
        range(ctx.n_classes), ctx.model.classifier.in_features, ctx.device)
    if "flip" not in ctx.augmentation:
        _class_means_without_mirror_images(strategy)
    return strategy


def _class_means_without_mirror_images(strategy) -> None:
    """Class means over the exemplars alone, not also over their mirror images.

    Avalanche 0.6's iCaRL averages each class mean over the exemplars' features and the
    features of the exemplars flipped left-right, whenever inputs are 4-D images (as the
    iCaRL paper does on CIFAR, where flips are part of training). A mirrored digit is
    another image: on Split MNIST that mean cost about 5 points of ACC. So flips enter the
    class means only when the protocol's augmentation flips (`StrategyContext.augmentation`).
    """
    import torch
    from avalanche.training.supervised.icarl import _ICaRLPlugin

    [plugin] = [p for p in strategy.plugins if isinstance(p, _ICaRLPlugin)]

    @torch.no_grad()
    def compute_class_means(strategy):
        if not plugin.class_means:
            plugin.class_means = {c: torch.zeros(plugin.embedding_size, device=strategy.device)
                                  for c in range(sum(strategy.experience.benchmark.n_classes_per_exp))}
        for samples, labels in zip(plugin.x_memory, plugin.y_memory):
            features = strategy.model.feature_extractor(samples.to(strategy.device))
            mean = torch.nn.functional.normalize(features, dim=1).mean(dim=0)
            plugin.class_means[labels[0]] = mean / mean.norm()
        strategy.model.eval_classifier.replace_class_means_dict(plugin.class_means)

    plugin.compute_class_means = compute_class_means


METHODS = [
    Method(
        name="icarl",
        factory=make_icarl,
        hyperparameters=ICaRLHyperparameters,
        scenarios=("class",),
        description="iCaRL: herding exemplars, distillation, nearest-mean-of-exemplars classifier.",
        stored_exemplars=icarl_exemplars,
    ),
]
