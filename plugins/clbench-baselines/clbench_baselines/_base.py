"""What every baseline shares: the frozen hyperparameter base model and memory counts."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, model_serializer

import clbench


class Hyperparameters(clbench.Hyperparameters):
    """Base of every baseline's hyperparameters: clbench's (frozen, unknown keys are errors,
    finite numbers only, no boolean for a number).

    Field names follow the keyword arguments of the wrapped Avalanche strategy, so
    Avalanche's documentation applies to them unchanged.

    A field added after records of the method were published is named in `added_later`:
    at its default it is left out of the dump, hence out of run ids and records, so every
    earlier run keeps its id and its record still reads as this configuration (the
    default reproduces the code that wrote it). Set to anything else it is recorded.
    """

    added_later: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_added_later_fields_at_their_default(self, handler):
        data = handler(self)
        for name in self.added_later:
            if name in data and getattr(self, name) == type(self).model_fields[name].default:
                del data[name]
        return data


#: The scenarios every baseline but iCaRL runs in (docs/scenarios.md): in the
#: task-incremental one Avalanche's strategies call the harness's multi-head network with
#: each sample's task label (`avalanche_forward`), and LwF distils every seen task's head.
ALL_SCENARIOS = ("task", "domain", "class")


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
