"""What every baseline shares: the frozen hyperparameter base model and memory counts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Hyperparameters(BaseModel):
    """Base of every baseline's hyperparameters: immutable, and unknown keys are errors.

    Field names follow the keyword arguments of the wrapped Avalanche strategy, so
    Avalanche's documentation applies to them unchanged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")


def no_exemplars(hp: BaseModel, n_tasks: int, n_classes: int) -> int:
    """Regularisation and distillation methods keep no training samples."""
    return 0


def buffer_size(hp: BaseModel, n_tasks: int, n_classes: int) -> int:
    """A fixed buffer of `mem_size` samples, however many tasks there are."""
    return hp.mem_size


def per_experience(hp: BaseModel, n_tasks: int, n_classes: int) -> int:
    """`patterns_per_exp` samples kept from every phase, the last one included.

    Avalanche's GEM and A-GEM plugins add the current experience's samples to memory in
    `after_training_exp`, so after the final phase they hold n_tasks such sets.
    """
    return hp.patterns_per_exp * n_tasks
