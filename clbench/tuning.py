"""Hyperparameter selection on a tuning stream, never on test data (docs/tuning.md).

After Cha & Cho, "Hyperparameters in Continual Learning: a Reality Check" (arXiv
2403.09066): settings are compared on a *tuning stream* with the protocol's structure (task
count, scenario, sizes, model, training budget, environment) but none of its evaluation
data, and only the single best setting is then run on the protocol itself
(`clbench evaluate METHOD --hp-from TUNING_RECORD`).

The tuning stream is the protocol with `benchmark.stream=tuning` (clbench.tasks): each
task's test set is replaced by validation images held out of that task's *training*
images, and permuted MNIST uses other permutations. Every trial is an ordinary run with an
ordinary record (audited, isolated, resumable, on any suite executor); the tuning record
lists every setting tried, its score per seed and the rule that picked the winner, and is
sealed like a run record.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import statistics
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ClbenchError
from .inputs import one_line
from .protocol import Protocol, apply_overrides, parse_value
from .records import canonical_json, read_bounded, run_id, write_atomic

SELECTION_RULE = ("highest mean final ACC over the seeds on the tuning stream; "
                  "ties go to the earlier setting in grid order; failed settings are never chosen")
STREAM = ("tuning stream: each task validated on images held out of its own training images "
          "(never test images); permuted MNIST with other permutations")
#: Most settings one tuning command may try (each costs a run per seed).
MAX_SETTINGS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Trial(_Strict):
    """One setting: its hyperparameters, its run per seed and their final ACC."""

    hyperparameters: dict[str, Any]
    run_ids: list[str]
    acc: list[float | None] = Field(description="final ACC per seed; None where the run failed")
    mean_acc: float | None
    failure: str | None = None


class TuningRecord(_Strict):
    """What `clbench tune` decided, and everything it compared to decide it."""

    schema_version: Literal[1] = 1
    kind: Literal["tuning"] = "tuning"
    tuning_id: str
    method: str
    plugin: str
    version: str
    plugin_digest: str | None = None
    #: The evaluation protocol the setting is chosen for (resolved, with its hash).
    protocol: dict[str, Any]
    protocol_overrides: list[str] = []
    #: The hash of the tuning stream's protocol, on which every trial ran.
    tuning_protocol_hash: str
    stream: str = STREAM
    search_space: dict[str, list[Any]]
    grid_source: Literal["method", "user"]
    grid_size: int = Field(ge=1)
    seeds: list[int]
    trials: list[Trial]
    selection_rule: str = SELECTION_RULE
    selected: dict[str, Any]
    selected_mean_acc: float
    created_at: str
    integrity: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "TuningRecord":
        for trial in self.trials:
            scores = [a for a in trial.acc if a is not None]
            if any(not 0.0 <= a <= 1.0 for a in scores):
                raise ValueError("a trial's ACC is outside [0, 1]")
            expected = round(statistics.fmean(scores), 6) if trial.failure is None and scores else None
            if trial.mean_acc != expected:
                raise ValueError("a trial's mean_acc does not match its per-seed ACC")
        best = select(self.trials)
        if best is None or best.hyperparameters != self.selected or best.mean_acc != self.selected_mean_acc:
            raise ValueError("the selected setting is not the one the selection rule picks")
        return self

    @property
    def protocol_hash(self) -> str:
        return self.protocol["hash"]


def select(trials: list[Trial]) -> Trial | None:
    """The selection rule (SELECTION_RULE): best mean ACC, earliest on ties."""
    scored = [t for t in trials if t.mean_acc is not None]
    return max(scored, key=lambda t: t.mean_acc, default=None) if scored else None


#: Where a protocol trains on (nearly) every training image of a task, the tuning stream
#: trains on this fraction of them and validates on the rest.
TRAIN_FRACTION = 0.9


def tuning_protocol(protocol: Protocol) -> Protocol:
    """The protocol's tuning stream: the same structure, no evaluation data.

    Validation images come out of each task's training images (clbench.tasks), so a
    protocol whose tasks train on more than TRAIN_FRACTION of a task's share of the
    training images (the image presets use all of them) tunes with that fraction.
    """
    from .protocol import BENCHMARKS

    benchmark = protocol.benchmark
    overrides = ["benchmark.stream=tuning"]
    share = BENCHMARKS[benchmark.name]["train_images"] // (benchmark.n_tasks if benchmark.is_split else 1)
    most = int(share * TRAIN_FRACTION)
    if benchmark.train_samples_per_task > most:
        overrides.append(f"benchmark.train_samples_per_task={most}")
    try:
        return apply_overrides(protocol, overrides)
    except ClbenchError as exc:  # e.g. an environment that draws more than the smaller pool
        raise ClbenchError(one_line(f"no tuning stream for {protocol.name}: {exc}")) from None


def parse_grid(texts: list[str], method) -> dict[str, list[Any]]:
    """'key=v1,v2,...' per `--grid`, each value checked against the method's model."""
    grid: dict[str, list[Any]] = {}
    for text in texts:
        key, sep, values = text.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ClbenchError(one_line(f"--grid expects KEY=V1,V2,..., got '{text}'"))
        if key in grid:
            raise ClbenchError(f"--grid names '{key}' twice")
        grid[key] = [parse_value(v) for v in values.split(",")]
    for key, values in grid.items():
        for value in values:
            method.parse_hyperparameters({key: value})  # one-line error naming the bad one
    return grid


def settings(space: dict[str, list[Any]], trials: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """Every combination of the space (in its order), or `trials` of them drawn without
    replacement (seeded, kept in grid order)."""
    keys = list(space)
    grid = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]
    if trials is not None and trials < len(grid):
        chosen = sorted(random.Random(f"clbench-tune:{seed}").sample(range(len(grid)), trials))
        grid = [grid[i] for i in chosen]
    if len(grid) > MAX_SETTINGS:
        raise ClbenchError(f"the grid has {len(grid)} settings, more than {MAX_SETTINGS}; "
                           "narrow it or sample with --trials N")
    return grid


def tuning_id(protocol_hash: str, method: str, grid: list[dict], seeds: list[int]) -> str:
    return hashlib.sha256(canonical_json([protocol_hash, method, grid, seeds]).encode()).hexdigest()[:20]


def integrity_hash(record: TuningRecord) -> str:
    body = record.model_dump(mode="json", exclude={"integrity"})
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def tuning_filename(protocol_name: str, method: str, tid: str) -> str:
    return f"{protocol_name}__{method}__tuning__{tid[:10]}.json"


def write_tuning_record(record: TuningRecord, folder: Path) -> Path:
    record = record.model_copy(update={"integrity": integrity_hash(record)})
    path = Path(folder) / tuning_filename(record.protocol["name"], record.method, record.tuning_id)
    write_atomic(path, record.model_dump_json(indent=2) + "\n")
    return path


def read_tuning_record(path: str | Path) -> TuningRecord:
    """A tuning record, validated and its seal checked (one-line ClbenchError otherwise)."""
    path = Path(path)
    data = read_bounded(path, "tuning record")
    try:
        record = TuningRecord.model_validate_json(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"]))
        raise ClbenchError(one_line(f"invalid tuning record '{path}': {where + ': ' if where else ''}"
                                    f"{error['msg'].removeprefix('Value error, ')}")) from None
    if record.integrity != integrity_hash(record):
        raise ClbenchError(f"invalid tuning record '{path}': its content does not match its integrity "
                           "hash (edited after it was written)")
    return record


def at_edge_of_search_space(record: TuningRecord) -> dict[str, str]:
    """Hyperparameters whose selected value is the smallest or largest numeric value
    searched (of at least three), mapped to "smallest" or "largest": the best setting may
    lie beyond the grid, so the choice says little until the grid is widened that way."""
    edges = {}
    for key, values in record.search_space.items():
        numbers = sorted({v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)})
        chosen = record.selected.get(key)
        if len(numbers) < 3 or isinstance(chosen, bool) or not isinstance(chosen, (int, float)):
            continue
        if chosen == numbers[-1]:
            edges[key] = "largest"
        elif chosen == numbers[0]:
            edges[key] = "smallest"
    return edges


def source_of(record: TuningRecord) -> dict:
    """The `hyperparameter_source` a run with the tuned setting records."""
    return {"kind": "tuned", "tuning_id": record.tuning_id, "grid_size": record.grid_size,
            "stream": "tuning"}


def check_applies(record: TuningRecord, method: str, protocol: Protocol, path: Path) -> None:
    """A tuning record is used only for the method and protocol it was made for."""
    if record.method != method:
        raise ClbenchError(f"tuning record '{path}' is for method {record.method}, not {method}")
    if record.protocol_hash != protocol.hash:
        tuned = " ".join([record.protocol["name"], *(f"--set {o}" for o in record.protocol_overrides)])
        raise ClbenchError(
            f"tuning record '{path}' chose for protocol {tuned} (hash {record.protocol_hash[:12]}), "
            f"not this one (hash {protocol.short_hash}); evaluate on the protocol it tuned for, "
            "or tune on this one")


def tune(registered, protocol: Protocol, grid: dict[str, list[Any]], grid_source: str,
         trials: int | None, seeds: list[int], out: Path, data_root: Path, device: str = "cpu",
         overrides: list[str] | None = None, executor: str = "local", jobs: int = 1,
         threads: int | None = None, time_limit_s: float | None = None,
         ray_address: str | None = None,
         log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
         ) -> tuple[TuningRecord, Path]:
    """Run every setting on the tuning stream (resuming finished runs), pick one, write the
    sealed tuning record into `out`, and return it with its path."""
    from .provenance import plugin_digest
    from .suites import PlannedRun, Variant, existing_record, run_suite

    if protocol.benchmark.stream != "evaluation":
        raise ClbenchError("tune chooses for an evaluation protocol; give it one (it builds the tuning "
                           "stream itself)")
    stream = tuning_protocol(protocol)
    candidates = settings(grid, trials)
    planned = []
    for values in candidates:
        hp = registered.method.parse_hyperparameters(values)
        variant = Variant(protocol.name, registered.name, tuple(overrides or ()),
                          tuple(f"{k}={v}" for k, v in values.items()))
        for seed in seeds:
            rid = run_id(stream.hash, registered.name, hp.model_dump(mode="json"), seed)
            planned.append(PlannedRun(variant, stream, registered, hp, seed, rid))
    runs_folder = Path(out) / "runs"
    log(f"tuning {registered.name} on {protocol.name}'s tuning stream (hash {stream.short_hash}): "
        f"{len(candidates)} setting(s) x {len(seeds)} seed(s)")
    outcome = run_suite(planned, runs_folder, data_root, device, log=log, executor=executor, jobs=jobs,
                        threads=threads, time_limit_s=time_limit_s, ray_address=ray_address)
    failures = {id(p): reason for p, reason in outcome.failed}
    results = []
    for index, values in enumerate(candidates):
        runs = planned[index * len(seeds):(index + 1) * len(seeds)]
        records = [existing_record(runs_folder, run) for run in runs]
        acc = [round(r.metrics.acc, 6) if r is not None else None for r in records]
        failed = [failures.get(id(run), "no record") for run, r in zip(runs, records) if r is None]
        results.append(Trial(
            hyperparameters=runs[0].hyperparameters.model_dump(mode="json"),
            run_ids=[run.run_id for run in runs], acc=acc,
            mean_acc=None if failed else round(statistics.fmean(acc), 6),
            failure=one_line(failed[0]) if failed else None))
    best = select(results)
    if best is None:
        raise ClbenchError(f"every setting failed on the tuning stream; the runs' notes are in {runs_folder}")
    tid = tuning_id(protocol.hash, registered.name, [t.hyperparameters for t in results], list(seeds))
    record = TuningRecord(
        tuning_id=tid, method=registered.name, plugin=registered.plugin, version=registered.version,
        plugin_digest=plugin_digest(registered.plugin), protocol=protocol.resolved(),
        protocol_overrides=list(overrides or []), tuning_protocol_hash=stream.hash,
        search_space={k: list(v) for k, v in grid.items()}, grid_source=grid_source,
        grid_size=len(results), seeds=list(seeds), trials=results, selected=best.hyperparameters,
        selected_mean_acc=best.mean_acc,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return record, write_tuning_record(record, out)
