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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .environments import ENVIRONMENT_KINDS, Environment
from .errors import ClbenchError, did_you_mean

PositiveInt = Annotated[int, Field(gt=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


BENCHMARKS: dict[str, dict[str, Any]] = {
    # name: scenario, number of classes, flattened input size
    "permuted-mnist": {"scenario": "domain", "classes": 10, "input_size": 28 * 28},
    "split-mnist": {"scenario": "class", "classes": 10, "input_size": 28 * 28},
    "split-cifar100": {"scenario": "class", "classes": 100, "input_size": 3 * 32 * 32},
    "split-tinyimagenet": {"scenario": "class", "classes": 200, "input_size": 3 * 64 * 64},
}


class BenchmarkSpec(_Frozen):
    """The task sequence: which dataset, how it is cut into tasks, and how much of it."""

    name: Literal["permuted-mnist", "split-mnist", "split-cifar100", "split-tinyimagenet"]
    n_tasks: PositiveInt
    train_samples_per_task: PositiveInt = Field(
        description="Size of each task's training pool, drawn once per seed."
    )
    test_samples_per_task: PositiveInt | None = Field(
        default=None, description="Size of each task's test set; None keeps all of it."
    )
    class_order: Literal["fixed", "seeded"] = Field(
        default="fixed",
        description="Split benchmarks: classes in label order, or shuffled by the run seed.",
    )

    @model_validator(mode="after")
    def _check(self) -> "BenchmarkSpec":
        if self.scenario == "class" and self.n_classes % self.n_tasks:
            raise ValueError(
                f"{self.name} has {self.n_classes} classes, which do not split evenly "
                f"into {self.n_tasks} tasks"
            )
        return self

    @property
    def scenario(self) -> str:
        """'domain' (same classes, new input distribution) or 'class' (new classes)."""
        return BENCHMARKS[self.name]["scenario"]

    @property
    def n_classes(self) -> int:
        return BENCHMARKS[self.name]["classes"]

    @property
    def input_size(self) -> int:
        return BENCHMARKS[self.name]["input_size"]


class ModelSpec(_Frozen):
    """The network the harness builds (methods never choose it)."""

    architecture: Literal["mlp"] = "mlp"
    hidden: tuple[PositiveInt, ...] = Field(default=(400, 400), min_length=1)
    batch_norm: bool = False
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0


class TrainingSpec(_Frozen):
    """The training budget every method gets in every phase."""

    optimizer: Literal["sgd", "adam"] = "adam"
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    batch_size: PositiveInt = 128
    epochs: PositiveInt = 1


class EvaluationSpec(_Frozen):
    """How the harness measures: test batches, learning curves, facilitation threshold."""

    batch_size: PositiveInt = 1024
    curve_points: PositiveInt = Field(
        default=10, description="Learning-curve evaluations of the new task per phase."
    )
    curve_test_samples: PositiveInt | None = Field(
        default=1000,
        description="Held-out samples of the new task used for its learning curve.",
    )
    facilitation_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.8


HASHED_FIELDS = ("benchmark", "model", "environment", "training", "evaluation")
#: Everything but the environment: runs that share a setup hash differ only in their
#: environment, which is the comparison the power-law paper makes (one leaderboard table).
SETUP_FIELDS = ("benchmark", "model", "training", "evaluation")


def content_hash(protocol_data: dict[str, Any], fields: tuple[str, ...] = HASHED_FIELDS) -> str:
    """sha256 over the canonical JSON of `fields` of a protocol's JSON-mode dump."""
    content = {key: protocol_data[key] for key in fields}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


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

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.+_-]*$")
    version: PositiveInt = 1
    description: str = ""
    benchmark: BenchmarkSpec
    model: ModelSpec = ModelSpec()
    environment: Environment
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    seeds: tuple[Annotated[int, Field(ge=0)], ...] = Field(default=(0, 1, 2), min_length=1)

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
        return self

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
    """A command-line value: JSON when it parses (numbers, true, null, [lists]), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignment(text: str, option: str) -> tuple[str, Any]:
    """Split 'key=value' from `--set` or `--hp`, with a clear error on bad syntax."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ClbenchError(f"{option} expects KEY=VALUE, got '{text}'")
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
    """A new kind keeps only the parameters the new kind also has (its defaults fill the rest)."""
    cls = ENVIRONMENT_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return {**env, "kind": kind}  # validation reports the bad kind
    return {key: value for key, value in env.items() if key in cls.model_fields} | {"kind": kind}


def format_validation_error(exc: ValidationError) -> str:
    """One line from a pydantic error: 'field.path: message; ...'."""
    parts = []
    for error in exc.errors():
        location = ".".join(
            str(p) for p in error["loc"] if not (isinstance(p, str) and p in ENVIRONMENT_KINDS)
        )
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


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
            raise ClbenchError(f"unknown protocol field '{key}'{did_you_mean(key, settable)}")
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
