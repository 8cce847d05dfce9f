"""What a method is: a name, a hyperparameter model and a strategy factory.

Plugins describe methods with `Method`; the harness calls the factory with a
`StrategyContext` holding everything the harness owns (model, optimizer, loss, training
budget, device, its own evaluation plugins) and the validated hyperparameters, and gets
back an Avalanche `SupervisedTemplate`. The method's process never holds test data
(clbench.isolation); what that does and does not prevent: docs/trust.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ClbenchError, did_you_mean
from .inputs import StrictNumbers, check_number, non_finite_path, one_line

#: The three scenarios (van de Ven, Tuytelaars & Tolias 2022; docs/scenarios.md).
SCENARIOS = ("task", "domain", "class")
#: What a method supports unless it says otherwise (what every method ran on before the
#: task-incremental scenario existed, which needs task labels and the multi-head network).
DEFAULT_SCENARIOS = ("domain", "class")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Hyperparameters(StrictNumbers):
    """Base for a method's hyperparameter model: frozen, unknown keys refused, strict numbers.

    Inherit from it and declare fields with pydantic's `Field` (bounds, descriptions).
    Every `--hp` value then goes through these rules before any training: no inf or nan
    in a float (a record could not hold them), no `true`/`false` for a number, integers
    within int64, and unknown keys are errors. (`Method.parse_hyperparameters` applies the
    same number rules to models that do not inherit this one: records hold only finite
    JSON numbers.)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class NoHyperparameters(Hyperparameters):
    """For methods without hyperparameters."""


@dataclass
class StrategyContext:
    """What the harness hands a method's factory. Everything here belongs to the protocol."""

    model: Any
    optimizer: Any
    criterion: Any
    train_epochs: int
    train_mb_size: int
    eval_mb_size: int
    device: Any
    plugins: list = field(default_factory=list)
    evaluator: Any = None
    #: "task", "domain" or "class" (docs/scenarios.md). In "task" the model is a
    #: multi-head Avalanche MultiTaskModule and every sample carries its task label.
    scenario: str = "domain"
    #: Labels the model predicts (per head): all classes in "class", the labels within a
    #: task on a split's "domain" and "task" scenarios (2 on Split MNIST).
    n_classes: int = 10
    n_tasks: int = 1
    #: The harness's training augmentation (`training.augmentation`: "none" or "crop-flip"),
    #: applied to every minibatch before the method sees it; for methods whose own steps
    #: depend on it (iCaRL averages class means over mirrored images only when flips are
    #: part of the data's augmentation).
    augmentation: str = "none"

    def strategy_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every Avalanche `SupervisedTemplate` subclass accepts.

        Pass them through unchanged (``Naive(**ctx.strategy_kwargs())``) and add your own
        plugins to ``plugins`` rather than replacing the list: the harness's plugins must
        stay in the strategy.
        """
        return {
            "model": self.model,
            "optimizer": self.optimizer,
            "criterion": self.criterion,
            "train_mb_size": self.train_mb_size,
            "train_epochs": self.train_epochs,
            "eval_mb_size": self.eval_mb_size,
            "device": self.device,
            "plugins": list(self.plugins),
            "evaluator": self.evaluator,
        }


@dataclass(frozen=True)
class Checkpointing:
    """How a method's strategy saves and restores what it learned beyond model and optimizer.

    `save(strategy)` returns the method's own state (importances, anchors, buffers, an
    old model's ``state_dict``...) as tensors, numbers, strings, lists and plain dicts;
    `load(strategy, state)` puts it back into a freshly built strategy. The harness saves
    the model, the optimizer, Avalanche's clock and every RNG itself. With both in place
    a run killed mid-way continues from its last finished phase (see clbench.checkpoint);
    `clbench check-plugin` verifies that the resumed run matches an uninterrupted one.
    """

    save: Callable[[Any], dict]
    load: Callable[[Any, dict], None]


def _no_state(strategy) -> dict:
    return {}


def _restore_nothing(strategy, state: dict) -> None:
    return None


#: For strategies whose whole state is the model and the optimizer (plain fine-tuning).
STATELESS = Checkpointing(save=_no_state, load=_restore_nothing)


@dataclass(frozen=True)
class Method:
    """A continual-learning method, as a plugin registers it."""

    name: str
    factory: Callable[[StrategyContext, BaseModel], Any]
    hyperparameters: type[BaseModel] = NoHyperparameters
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    description: str = ""
    #: Most training samples the method keeps in memory across phases, as
    #: f(hyperparameters, n_tasks, n_classes) (None means 0). Goes into every record.
    stored_exemplars: Callable[[BaseModel, int, int], int] | None = None
    #: Per-phase checkpointing hooks; None means a killed run restarts from its first phase.
    checkpointing: Checkpointing | None = None
    #: The values `clbench tune` tries per hyperparameter (a grid), from the sources the
    #: method cites; budgets such as memory sizes belong to the comparison, not here.
    #: Empty: `tune` needs `--grid`. See docs/tuning.md.
    search_space: dict[str, tuple] = field(default_factory=dict)

    def exemplars(self, hyperparameters: BaseModel, n_tasks: int, n_classes: int) -> int:
        if self.stored_exemplars is None:
            return 0
        return int(self.stored_exemplars(hyperparameters, n_tasks, n_classes))

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"method name '{self.name}' must be lower-case letters, digits, '-' or '_'")
        bad = set(self.scenarios) - set(SCENARIOS)
        if bad or not self.scenarios:
            raise ValueError(f"method '{self.name}': scenarios must be a non-empty subset of {SCENARIOS}")
        if not (isinstance(self.hyperparameters, type) and issubclass(self.hyperparameters, BaseModel)):
            raise ValueError(f"method '{self.name}': hyperparameters must be a pydantic model class")
        for key, values in self.search_space.items():
            if key not in self.hyperparameters.model_fields:
                raise ValueError(f"method '{self.name}': search_space names '{key}', which is not "
                                 "one of its hyperparameters")
            if isinstance(values, (str, bytes)) or not len(values):
                raise ValueError(f"method '{self.name}': search_space['{key}'] must be a non-empty "
                                 "sequence of values")

    def parse_hyperparameters(self, values: dict[str, Any]) -> BaseModel:
        """Validate `--hp` values against the method's model, with one-line errors."""
        fields = self.hyperparameters.model_fields
        for key in values:
            if key not in fields:
                known = ", ".join(fields) or "none"
                hint = did_you_mean(key, fields) or f"; known: {known}"
                raise ClbenchError(one_line(f"method '{self.name}' has no hyperparameter '{key}'{hint}"))
        try:
            for key, value in values.items():
                check_number(value, fields[key].annotation)
            parsed = self.hyperparameters.model_validate(values)
        except ValidationError as exc:
            parts = [
                f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            ]
            raise ClbenchError(one_line(f"bad hyperparameter for '{self.name}': {'; '.join(parts)}")) from None
        except ValueError as exc:  # from check_number, for models not built on Hyperparameters
            raise ClbenchError(f"bad hyperparameter for '{self.name}': {key}: {exc}") from None
        bad = non_finite_path(parsed.model_dump())
        if bad is not None:
            raise ClbenchError(f"bad hyperparameter for '{self.name}': {bad}: Input should be a "
                               "finite number (a record cannot hold inf or nan)")
        return parsed


@dataclass(frozen=True)
class RegisteredMethod:
    """A method plus the installed distribution that registered it."""

    method: Method
    plugin: str
    version: str

    @property
    def name(self) -> str:
        return self.method.name
