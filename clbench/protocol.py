"""Protocols: the fixed, versioned, hashable definition of an experiment.

A protocol says everything about a run except the method and the seed: benchmark, task
sizes, model, environment, training budget and evaluation. Protocols are frozen pydantic
models; their content hash identifies them on any machine, and a leaderboard never mixes
runs of different hashes.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from . import bounds
from .bounds import (
    MAX_BATCH, MAX_CURVE_POINTS, MAX_DEPTH, MAX_DESCRIPTION, MAX_EPOCHS, MAX_ITERATIONS, MAX_NAME, MAX_SAMPLES,
    MAX_SEEDS, MAX_TASKS, MAX_WIDTH,
)
from .budgets import step_limit
from .environments import ENVIRONMENT_KINDS, Environment
from .errors import ClbenchError, did_you_mean
from .inputs import StrictNumbers, one_line
from .models.catalog import ARCHITECTURES, network_size

PositiveInt = Annotated[int, Field(gt=0)]
SampleCount = Annotated[int, Field(gt=0, le=MAX_SAMPLES)]
BatchSize = Annotated[int, Field(gt=0, le=MAX_BATCH)]


class _Frozen(StrictNumbers):
    """Frozen, unknown keys refused, and numbers strict: finite, never a boolean."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


BENCHMARKS: dict[str, dict[str, Any]] = {
    # name: default scenario, the scenarios it has (docs/scenarios.md), number of classes,
    # input shape (C, H, W) and its flattened size, training and test images
    "permuted-mnist": {"scenario": "domain", "scenarios": ("task", "domain"), "classes": 10,
                       "input_shape": (1, 28, 28), "input_size": 28 * 28,
                       "train_images": 60000, "test_images": 10000},
    "split-mnist": {"scenario": "class", "scenarios": ("task", "domain", "class"), "classes": 10,
                    "input_shape": (1, 28, 28), "input_size": 28 * 28,
                    "train_images": 60000, "test_images": 10000},
    "split-cifar100": {"scenario": "class", "scenarios": ("task", "class"), "classes": 100,
                       "input_shape": (3, 32, 32), "input_size": 3 * 32 * 32,
                       "train_images": 50000, "test_images": 10000},
    "split-tinyimagenet": {"scenario": "class", "scenarios": ("task", "class"), "classes": 200,
                           "input_shape": (3, 64, 64), "input_size": 3 * 64 * 64,
                           "train_images": 100000, "test_images": 10000},
}

Scenario = Literal["task", "domain", "class"]


class BenchmarkSpec(_Frozen):
    """The task sequence: which dataset, how it is cut into tasks, and how much of it."""

    name: Literal["permuted-mnist", "split-mnist", "split-cifar100", "split-tinyimagenet"]
    n_tasks: Annotated[int, Field(gt=0, le=MAX_TASKS)]
    train_samples_per_task: SampleCount = Field(
        description="Size of each task's training pool, drawn once per seed."
    )
    test_samples_per_task: SampleCount | None = Field(
        default=None, description="Size of each task's test set; None keeps all of it."
    )
    class_order: Literal["fixed", "seeded"] = Field(
        default="fixed",
        description="Split benchmarks: classes in label order, or shuffled by the run seed.",
    )
    scenario: Scenario = Field(
        default="class",
        description="task (a head per task, task label given), domain (one head over the labels "
                    "within a task) or class (one head over all classes); default: the "
                    "benchmark's own (docs/scenarios.md).",
    )
    inputs: Literal["standardised", "unit-interval"] = Field(
        default="standardised",
        description="What the model sees of each pixel: standardised, (pixel / 255 - mean) / std "
                    "per channel with the dataset's commonly reported statistics; unit-interval, "
                    "pixel / 255 (torchvision's ToTensor without Normalize, as many MNIST papers "
                    "and van de Ven's code).",
    )
    stream: Literal["evaluation", "tuning"] = Field(
        default="evaluation",
        description="evaluation: test on the dataset's test split; tuning: the same structure "
                    "built from training images only, for choosing hyperparameters "
                    "(docs/tuning.md). `clbench tune` sets it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_scenario(cls, data: Any) -> Any:
        """An absent (or null) scenario is the benchmark's own, as before the field existed."""
        if isinstance(data, dict) and data.get("scenario") is None and data.get("name") in BENCHMARKS:
            data = {**data, "scenario": BENCHMARKS[data["name"]]["scenario"]}
        return data

    @model_validator(mode="after")
    def _check(self) -> "BenchmarkSpec":
        allowed = BENCHMARKS[self.name]["scenarios"]
        if self.scenario not in allowed:
            raise ValueError(f"{self.name} has no {self.scenario}-incremental scenario; "
                             f"benchmark.scenario must be one of {', '.join(allowed)}")
        if self.is_split and self.n_classes % self.n_tasks:
            raise ValueError(
                f"{self.name} has {self.n_classes} classes, which do not split evenly "
                f"into {self.n_tasks} tasks"
            )
        # more than the dataset holds is an error, never silently "all of it"; the exact
        # per-task counts of split benchmarks are checked against the data when it is read
        for field, split in (("train_samples_per_task", "train"), ("test_samples_per_task", "test")):
            wanted, available = getattr(self, field), BENCHMARKS[self.name][f"{split}_images"]
            if wanted is not None and wanted > available:
                raise ValueError(
                    f"{field}={wanted} is more than the {available:,} {split} images "
                    f"{self.name} has"
                )
        return self

    @property
    def test_per_task(self) -> int:
        """Test samples per task (for split benchmarks without a subset, the mean)."""
        if self.test_samples_per_task is not None:
            return self.test_samples_per_task
        images = BENCHMARKS[self.name]["test_images"]
        return images if not self.is_split else -(-images // self.n_tasks)

    @property
    def is_split(self) -> bool:
        """True for class splits (each task its own classes), False for permuted MNIST."""
        return self.name != "permuted-mnist"

    @property
    def classes_per_task(self) -> int:
        return self.n_classes // self.n_tasks if self.is_split else self.n_classes

    @property
    def output_classes(self) -> int:
        """Labels the model predicts (per head): every class in the class-incremental
        scenario; the labels within a task otherwise (0..classes_per_task-1 on a split)."""
        return self.n_classes if self.scenario == "class" else self.classes_per_task

    @property
    def n_heads(self) -> int:
        """One head per task in the task-incremental scenario, one shared head otherwise."""
        return self.n_tasks if self.scenario == "task" else 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one input; only the MLP flattens it."""
        return BENCHMARKS[self.name]["input_shape"]

    @property
    def n_classes(self) -> int:
        return BENCHMARKS[self.name]["classes"]

    @property
    def input_size(self) -> int:
        return BENCHMARKS[self.name]["input_size"]


class ModelSpec(_Frozen):
    """The network the harness builds (methods never choose it)."""

    architecture: Literal["mlp", "resnet18-reduced", "resnet18", "resnet32"] = Field(
        default="mlp", description="The network; see clbench.models.catalog.ARCHITECTURES.")
    hidden: tuple[Annotated[int, Field(gt=0, le=MAX_WIDTH)], ...] = Field(
        default=(400, 400), min_length=1, max_length=MAX_DEPTH)
    batch_norm: bool = False
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if self.architecture != "mlp":
            mlp = ModelSpec()
            changed = [name for name in ("hidden", "batch_norm", "dropout")
                       if getattr(self, name) != getattr(mlp, name)]
            if changed:  # they would change the hash but not the network
                raise ValueError(f"model.{', model.'.join(changed)} only apply to the mlp "
                                 f"architecture; leave them at their defaults for {self.architecture}")
        return self

    def describe(self) -> str:
        """'mlp 400-400' or the architecture's name."""
        if self.architecture == "mlp":
            return "mlp " + "-".join(map(str, self.hidden))
        return self.architecture


class TrainingSpec(_Frozen):
    """The training budget every method gets in every phase."""

    optimizer: Literal["sgd", "adam"] = "adam"
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    batch_size: BatchSize = 128
    epochs: Annotated[int, Field(gt=0, le=MAX_EPOCHS)] = 1
    iterations: Annotated[int, Field(gt=0, le=MAX_ITERATIONS)] | None = Field(
        default=None,
        description="Optimizer steps per phase, instead of epochs: the phase's data is passed "
                    "over, reshuffled each pass, until this many minibatches have been trained "
                    "on (the last pass cut short). How van de Ven's protocols count training; "
                    "every phase gets the same steps whatever its size. Leave epochs at 1.")
    augmentation: Literal["none", "crop-flip"] = Field(
        default="none",
        description="crop-flip: random 32x32 (64x64) crop after 4-pixel zero padding and a "
                    "horizontal flip with probability 1/2, per training sample (clbench.augment).")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32",
        description="Training forward and loss under autocast in bf16 or fp16 (fp16 with a "
                    "gradient scaler); weights, optimizer and evaluation stay fp32 (clbench.precision).")
    optimizer_kernel: Literal["default", "foreach", "fused"] = Field(
        default="default",
        description="The optimizer's torch implementation. default: torch's own choice (one "
                    "parameter at a time on CPU, foreach on CUDA); foreach: multi-tensor kernels; "
                    "fused: one fused kernel (fastest). The same update in another floating-point "
                    "order, so the numbers differ in the last bits: hashed, never switched silently.")

    @model_validator(mode="after")
    def _check(self) -> "TrainingSpec":
        if self.iterations is not None and self.epochs != 1:
            raise ValueError(f"training.iterations={self.iterations} replaces training.epochs, which "
                             f"must then be 1 (it is {self.epochs}): set training.epochs=1 as well")
        return self

    @property
    def strategy_epochs(self) -> int:
        """The strategy's `train_epochs`. Under an iteration budget, an upper bound on the
        passes needed (every pass yields a minibatch): the harness ends the phase at its
        last step (clbench.probes)."""
        return self.epochs if self.iterations is None else self.iterations

    def planned_steps(self, phase_samples: int) -> int:
        """Optimizer steps a plain method takes in a phase of `phase_samples` samples: the
        step limit of a method that trains on no memory (clbench.budgets)."""
        return step_limit(self.epochs, self.batch_size, phase_samples, 0, self.iterations)


class EvaluationSpec(_Frozen):
    """How the harness measures: test batches, learning curves, facilitation threshold."""

    batch_size: BatchSize = 1024
    curve_points: Annotated[int, Field(gt=0, le=MAX_CURVE_POINTS)] = Field(
        default=10, description="Learning-curve evaluations of the new task per phase."
    )
    curve_test_samples: SampleCount | None = Field(
        default=1000,
        description="Held-out samples of the new task used for its learning curve.",
    )
    facilitation_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.8


HASHED_FIELDS = ("benchmark", "model", "environment", "training", "evaluation")
#: Everything but the environment: runs that share a setup hash differ only in their
#: environment, which is the comparison the power-law paper makes (one leaderboard table).
SETUP_FIELDS = ("benchmark", "model", "training", "evaluation")


#: Fields added after protocols were first hashed: at these values they are left out of
#: the hash, so every earlier protocol (and record) keeps its hash.
_UNHASHED_DEFAULTS = {("training", "augmentation"): "none", ("training", "precision"): "fp32",
                      ("training", "optimizer_kernel"): "default", ("training", "iterations"): None,
                      ("benchmark", "stream"): "evaluation",
                      ("benchmark", "inputs"): "standardised"}


def _hashed_content(protocol_data: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    content = {key: protocol_data[key] for key in fields}
    for (section, key), default in _UNHASHED_DEFAULTS.items():
        if isinstance(content.get(section), dict) and content[section].get(key, default) == default:
            content[section] = {k: v for k, v in content[section].items() if k != key}
    benchmark = content.get("benchmark")
    if isinstance(benchmark, dict) and "scenario" in benchmark:
        own = BENCHMARKS.get(benchmark.get("name"), {}).get("scenario")
        if benchmark["scenario"] in (None, own):  # the benchmark's own scenario, as before
            content["benchmark"] = {k: v for k, v in benchmark.items() if k != "scenario"}
    return content


def content_hash(protocol_data: dict[str, Any], fields: tuple[str, ...] = HASHED_FIELDS) -> str:
    """sha256 over the canonical JSON of `fields` of a protocol's JSON-mode dump.

    `benchmark.scenario`, `benchmark.stream`, `benchmark.inputs`, `training.augmentation`,
    `training.precision` and `training.optimizer_kernel` at their defaults (the
    benchmark's own scenario, evaluation, standardised, none, fp32, default) are left out, so protocols
    from before those fields existed keep their hashes.
    """
    content = _hashed_content(protocol_data, fields)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every non-dict value in nested dicts."""
    leaves = {}
    for key, value in data.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def _default_of(key: str, data: dict[str, Any]) -> Any:
    """The value a protocol has when `key` is left out of its hashed content."""
    if key == "benchmark.scenario":
        return BENCHMARKS.get(data.get("benchmark", {}).get("name"), {}).get("scenario")
    return _UNHASHED_DEFAULTS.get(tuple(key.split(".", 1)))


def setup_changes(protocol_data: dict[str, Any], base_data: dict[str, Any]) -> list[str]:
    """How a protocol's setup (everything but the environment) differs from `base_data`'s,
    as the `--set` assignments that turn the base into it, e.g. ['training.epochs=1'].

    Leaderboards label a setup by its preset's name; a run made with `--set` overrides has
    another setup under the same name, and these say which."""
    ours = _leaves(_hashed_content(protocol_data, SETUP_FIELDS))
    base = _leaves(_hashed_content(base_data, SETUP_FIELDS))
    changes = []
    for key in sorted(ours.keys() | base.keys()):
        value = ours[key] if key in ours else _default_of(key, protocol_data)
        if key in base and base[key] == value or key not in base and value == _default_of(key, base_data):
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        changes.append(f"{key}={text}")
    return changes


def environment_label(environment: dict[str, Any]) -> str:
    """A short, complete description of an environment, e.g. 'uniform (rehearsal_fraction=0.25)'."""
    params = [f"{key}={value}" for key, value in sorted(environment.items())
              if key != "kind" and value is not None]
    if "counts_by_lag" in environment:
        params = [p if not p.startswith("counts_by_lag=") else
                  f"counts_by_lag=[{environment['counts_by_lag'][0]}, ...]" for p in params]
    return f"{environment['kind']} ({', '.join(params)})" if params else str(environment["kind"])


class Protocol(_Frozen):
    """A named, versioned experiment definition; see `docs/protocols.md`."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.+_-]*$", max_length=MAX_NAME)
    version: PositiveInt = 1
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    benchmark: BenchmarkSpec
    model: ModelSpec = ModelSpec()
    environment: Environment
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    seeds: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        default=(0, 1, 2), min_length=1, max_length=MAX_SEEDS)

    @model_validator(mode="after")
    def _check(self) -> "Protocol":
        pool = self.benchmark.train_samples_per_task
        try:
            largest = self.environment.largest_count(self.benchmark.n_tasks, pool)
        except ValueError as exc:
            raise ValueError(f"environment: {exc}") from None
        if largest > pool:
            raise ValueError(
                f"the environment draws {largest} samples of one task in a phase, more than "
                f"its training pool of {pool} (benchmark.train_samples_per_task)"
            )
        curve, test = self.evaluation.curve_test_samples, self.benchmark.test_samples_per_task
        if curve is not None and test is not None and curve > test:
            raise ValueError(f"evaluation.curve_test_samples={curve} is more than the {test} test "
                             "samples of a task (benchmark.test_samples_per_task); lower it too")
        if curve is not None and not self.benchmark.is_split and curve > self.benchmark.test_per_task:
            raise ValueError(f"evaluation.curve_test_samples={curve} is more than the "
                             f"{self.benchmark.test_per_task} test samples of a task")
        if self.training.augmentation != "none" and not self.benchmark.is_split:
            raise ValueError("training.augmentation crops and flips images; permuted MNIST's "
                             "inputs are permuted pixels, so it takes none")
        parameters = self.parameters
        if parameters > bounds.MAX_PARAMETERS:
            what = "model.hidden gives an MLP" if self.model.architecture == "mlp" else \
                f"model.architecture={self.model.architecture} gives a network"
            raise ValueError(f"{what} of {parameters:,} parameters, more than "
                             f"the bound of {bounds.MAX_PARAMETERS:,}")
        memory = self.memory_estimate()
        if memory.total > bounds.MAX_MEMORY:
            raise ValueError(f"the protocol needs {memory.describe()}, more than the bound of "
                             f"{bounds.human_bytes(bounds.MAX_MEMORY)} (reduce benchmark.n_tasks "
                             "or the samples per task)")
        return self

    @property
    def parameters(self) -> int:
        """Parameters of the network this protocol builds (all heads included)."""
        return self.network_size.total

    @property
    def network_size(self):
        """The network's size: trunk, feature width and head parameters (models.catalog)."""
        b, m = self.benchmark, self.model
        return network_size(m.architecture, b.input_shape, m.hidden, m.batch_norm, b.n_heads,
                            b.output_classes)

    def memory_estimate(self) -> bounds.MemoryEstimate:
        """What the harness holds for one run of this protocol (see bounds.MemoryEstimate)."""
        b = self.benchmark
        info = BENCHMARKS[b.name]
        return bounds.estimate(
            dataset_images=info["train_images"] + info["test_images"],
            image_bytes=b.input_size,
            n_tasks=b.n_tasks,
            pool=b.train_samples_per_task,
            test_per_task=b.test_per_task,
            largest_phase=self.environment.largest_phase(b.n_tasks, b.train_samples_per_task),
            parameters=self.parameters,
            optimizer_slots=bounds.optimizer_slots(self.training.optimizer, self.training.momentum),
        )

    @property
    def hash(self) -> str:
        """sha256 over the canonical JSON of every field that can change a run's numbers.

        Name, version, description and default seeds are labels and are not hashed.
        """
        return content_hash(self.model_dump(mode="json"))

    @property
    def setup_hash(self) -> str:
        """The hash without the environment (see SETUP_FIELDS)."""
        return content_hash(self.model_dump(mode="json"), SETUP_FIELDS)

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def env_matrix(self, seed: int = 0) -> list[list[int]]:
        """The environment's phase x task count matrix for this protocol and seed."""
        return self.environment.matrix(
            self.benchmark.n_tasks, self.benchmark.train_samples_per_task, seed
        )

    def resolved(self) -> dict[str, Any]:
        """The full protocol as JSON-ready data, with its hash."""
        return {**self.model_dump(mode="json"), "hash": self.hash}


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true, null, [lists]), else text.

    JSON that Python cannot hold (an integer of more than 4,300 digits, lists nested
    thousands deep) stays text, which validation then refuses.
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return text


def parse_assignment(text: str, option: str) -> tuple[str, Any]:
    """Split 'key=value' from `--set` or `--hp`, with a clear error on bad syntax."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ClbenchError(one_line(f"{option} expects KEY=VALUE, got '{text}'"))
    return key, parse_value(value)


def _field_paths(data: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict):
            paths.extend(_field_paths(value, path + "."))
    return paths


def _settable_paths(data: dict[str, Any]) -> list[str]:
    """Every dotted key `--set` accepts, including all environment parameters."""
    paths = set(_field_paths(data))
    for cls in ENVIRONMENT_KINDS.values():
        paths.update(f"environment.{name}" for name in cls.model_fields)
    for cls, section in ((BenchmarkSpec, "benchmark"), (ModelSpec, "model"),
                         (TrainingSpec, "training"), (EvaluationSpec, "evaluation")):
        paths.update(f"{section}.{name}" for name in cls.model_fields)
    return sorted(paths)


def _switch_environment(env: dict[str, Any], kind: Any) -> dict[str, Any]:
    """A new kind keeps the parameters that mean the same in both kinds; its defaults fill the rest.

    Shared: `new_samples`, `rehearsal_fraction` (budgeted kinds) and the power laws'
    `tau` and `alpha`. A kind's `own_parameters` never carry over, in either direction:
    the stochastic kind's `alpha` is a recurrence exponent (default 1.0), not the power
    law's (5.6).
    """
    cls = ENVIRONMENT_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return {**env, "kind": kind}  # validation reports the bad kind
    previous = env.get("kind")  # an earlier `--set environment.kind=` may have set any value
    old = ENVIRONMENT_KINDS.get(previous) if isinstance(previous, str) else None
    own = cls.own_parameters | (old.own_parameters if old is not None else frozenset())
    kept = {key: value for key, value in env.items()
            if key in cls.model_fields and (key not in own or old is cls)}
    return kept | {"kind": kind}


def format_validation_error(exc: ValidationError) -> str:
    """One line from a pydantic error: 'field.path: message; ...'."""
    parts = []
    for error in exc.errors():
        location = ".".join(
            str(p) for p in error["loc"] if not (isinstance(p, str) and p in ENVIRONMENT_KINDS)
        )
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return one_line("; ".join(parts))


def apply_overrides(protocol: Protocol, assignments: list[str]) -> Protocol:
    """Return `protocol` with each 'dotted.key=value' applied, re-validated, and re-hashed."""
    if not assignments:
        return protocol
    data = protocol.model_dump(mode="json")
    settable = _settable_paths(data)
    parsed = [parse_assignment(text, "--set") for text in assignments]
    # a kind switch goes first, so parameters set alongside it apply to the new kind
    # (and a parameter the new kind lacks is an error, not silently dropped)
    parsed.sort(key=lambda kv: kv[0] != "environment.kind")
    for key, value in parsed:
        if key not in settable:
            raise ClbenchError(one_line(f"unknown protocol field '{key}'{did_you_mean(key, settable)}"))
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if key == "environment.kind":
            data["environment"] = _switch_environment(data["environment"], value)
        else:
            node[leaf] = copy.deepcopy(value)
    try:
        return Protocol.model_validate(data)
    except ValidationError as exc:
        raise ClbenchError(f"invalid protocol override: {format_validation_error(exc)}") from None
