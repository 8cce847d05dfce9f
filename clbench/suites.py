"""Suites: named grids of (protocol variant, method, hyperparameters, seed) runs.

A suite expands into runs, each with a stable run id (protocol hash, method,
hyperparameters, seed). Running a suite skips every run whose valid record is already in
the output folder, so an interrupted suite resumes where it stopped and a finished one
costs nothing to re-run. Records are written atomically as each run finishes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ClbenchError, unknown_name
from .plugins import get_registry
from .presets import MLP_SIZES, get_protocol
from .protocol import Protocol, apply_overrides, parse_assignment
from .records import RunRecord, read_record, record_filename, run_id


@dataclass(frozen=True)
class Variant:
    """One cell of a suite: a protocol with overrides, a method and its hyperparameters."""

    protocol: str
    method: str
    overrides: tuple[str, ...] = ()
    hyperparameters: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        parts = [self.method, *self.overrides, *(f"hp:{h}" for h in self.hyperparameters)]
        return " ".join(parts)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...] = (0, 1, 2)


@dataclass
class PlannedRun:
    variant: Variant
    protocol: Protocol
    registered: object
    hyperparameters: object
    seed: int
    run_id: str

    @property
    def filename(self) -> str:
        return record_filename(self.protocol.name, self.registered.name, self.seed, self.run_id)


@dataclass
class SuiteOutcome:
    completed: list[PlannedRun] = field(default_factory=list)
    skipped: list[PlannedRun] = field(default_factory=list)
    failed: list[tuple[PlannedRun, str]] = field(default_factory=list)


ENVIRONMENTS_COMPARED = ("sequential", "uniform", "exponential", "power-law")


def _paper_environments() -> Suite:
    """The paper's core comparison on pmnist-10 (same rehearsal budget r for the budgeted kinds)."""
    variants = [Variant("pmnist-10", "naive", (f"environment.kind={kind}",))
                for kind in ("sequential", "uniform", "exponential", "power-law",
                             "power-law-unrestricted", "cumulative")]
    variants += [Variant("pmnist-10", method, ("environment.kind=sequential",))
                 for method in ("ewc", "si", "lwf", "replay")]
    variants += [Variant("pmnist-10", method, ("environment.kind=power-law",)) for method in ("lwf", "ewc")]
    return Suite("paper-environments",
                 "pmnist-10: six environments with naive; ewc, si, lwf, replay sequential; lwf, ewc in power-law",
                 tuple(variants))


#: The robustness sweeps start from a lighter pmnist-10 (10,000 samples per task, one epoch).
ROBUSTNESS_BASE = ("benchmark.train_samples_per_task=10000", "training.epochs=1")


def _paper_robustness() -> Suite:
    """One axis at a time: number of tasks, model size, rehearsal fraction; four environments."""
    axes: list[tuple[str, ...]] = []
    axes += [(f"benchmark.n_tasks={n}",) for n in (5, 10, 20)]
    axes += [(f"model.hidden={list(MLP_SIZES[size])}",) for size in ("small", "medium", "large")]
    axes += [(f"environment.rehearsal_fraction={r}",) for r in (0.1, 0.25, 0.5, 1.0)]
    variants, seen = [], set()
    for axis in axes:
        for kind in ENVIRONMENTS_COMPARED:
            if kind == "sequential" and axis[0].startswith("environment."):
                axis_here: tuple[str, ...] = ()  # no rehearsal to sweep: the default point
            else:
                axis_here = axis
            variant = Variant("pmnist-10", "naive", (*ROBUSTNESS_BASE, f"environment.kind={kind}", *axis_here))
            key = apply_overrides(get_protocol("pmnist-10"), list(variant.overrides)).hash
            if key not in seen:  # the default point of each axis appears once
                seen.add(key)
                variants.append(variant)
    return Suite("paper-robustness",
                 "naive in sequential/uniform/exponential/power-law, sweeping tasks, model size, rehearsal",
                 tuple(variants))


def _split_mnist() -> Suite:
    """Every installed class-incremental method on smnist-5 (resolved when the suite is run)."""
    registry = get_registry()
    methods = sorted(name for name, m in registry.methods.items()
                     if "class" in m.method.scenarios and m.plugin == "clbench-baselines")
    return Suite("split-mnist", "the class-incremental baselines on smnist-5",
                 tuple(Variant("smnist-5", method) for method in methods))


def _smoke_environments() -> Suite:
    """A seconds-long demo and test grid: naive on smoke in three environments, two seeds."""
    return Suite("smoke-environments", "naive on smoke: sequential, uniform, power-law (2 seeds)",
                 tuple(Variant("smoke", "naive", ("training.epochs=1", f"environment.kind={kind}"))
                       for kind in ("sequential", "uniform", "power-law")), seeds=(0, 1))


SUITES: dict[str, Callable[[], Suite]] = {
    "smoke-environments": _smoke_environments,
    "paper-environments": _paper_environments,
    "paper-robustness": _paper_robustness,
    "split-mnist": _split_mnist,
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise unknown_name("suite", name, SUITES)
    return SUITES[name]()


def plan(suite: Suite, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every run of the suite, with its protocol resolved and hyperparameters validated."""
    registry = get_registry()
    runs = []
    for variant in suite.variants:
        protocol = apply_overrides(get_protocol(variant.protocol), list(variant.overrides))
        registered = registry.get(variant.method)
        hp = registered.method.parse_hyperparameters(
            dict(parse_assignment(text, "--hp") for text in variant.hyperparameters))
        if protocol.benchmark.scenario not in registered.method.scenarios:
            raise ClbenchError(f"suite {suite.name}: {variant.method} does not support {protocol.name}")
        for seed in (seeds if seeds is not None else suite.seeds):
            rid = run_id(protocol.hash, registered.name, hp.model_dump(mode="json"), seed)
            runs.append(PlannedRun(variant, protocol, registered, hp, seed, rid))
    return runs


def existing_record(folder: Path, run: PlannedRun) -> RunRecord | None:
    """The run's record in `folder` if it is there and valid (an invalid one is redone)."""
    path = Path(folder) / run.filename
    if not path.exists():
        return None
    try:
        record = read_record(path)
    except ClbenchError:
        return None
    return record if record.run_id == run.run_id else None


def _run_in_worker(payload: dict) -> str:
    """Run one planned run in a worker process and return its record as JSON.

    Only plain data crosses the process boundary: the worker resolves the protocol and
    method itself from the installed plugins, so nothing is unpickled from the driver.
    """
    import torch

    from .protocol import Protocol
    from .runner import RunRequest, run

    torch.set_num_threads(payload["threads"])
    registered = get_registry().get(payload["method"])
    hp = registered.method.parse_hyperparameters(payload["hyperparameters"])
    protocol = Protocol.model_validate(payload["protocol"])
    folder = payload.get("checkpoint_dir")
    request = RunRequest(protocol, registered, hp, payload["seed"], Path(payload["data_root"]),
                         payload["device"], payload["overrides"], time_limit_s=payload["time_limit_s"],
                         checkpoint_dir=Path(folder) if folder else None,
                         notify=lambda line: print(f"{registered.name} seed {payload['seed']}: {line}",
                                                   file=sys.stderr, flush=True))
    return run(request).model_dump_json()


def _payload(planned: PlannedRun, data_root: Path, device: str, threads: int,
             time_limit_s: float | None = None, checkpoint_dir: Path | None = None) -> dict:
    return {
        "checkpoint_dir": str(checkpoint_dir) if checkpoint_dir else None,
        "time_limit_s": time_limit_s,
        "protocol": planned.protocol.model_dump(mode="json"),
        "method": planned.registered.name,
        "hyperparameters": planned.hyperparameters.model_dump(mode="json"),
        "seed": planned.seed,
        "data_root": str(data_root),
        "device": device,
        "overrides": list(planned.variant.overrides),
        "threads": threads,
    }


def _local_results(todo: list[PlannedRun], payload: Callable[[PlannedRun], dict]):
    for planned in todo:
        try:
            yield planned, _run_in_worker(payload(planned)), None
        except Exception as exc:
            yield planned, None, exc


def _process_results(todo: list[PlannedRun], payload: Callable[[PlannedRun], dict], jobs: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # no forked torch or avalanche state
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(_run_in_worker, payload(p)): p
                   for p in todo}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result(), None
            except Exception as exc:
                yield futures[future], None, exc


def _ray_results(todo: list[PlannedRun], payload: Callable[[PlannedRun], dict], device: str,
                 threads: int, jobs: int, address: str | None):
    """Each run as a Ray task asking for `threads` CPUs (and a GPU for a CUDA device).

    With no address a local Ray instance with `jobs * threads` CPUs is started (and
    stopped afterwards); with one, the runs go to that cluster, whose workers must have
    clbench, the plugins and the data root at the same path.
    """
    try:
        import ray
    except ImportError:
        raise ClbenchError("the ray executor needs Ray: pip install 'clbench[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        options = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=jobs * threads, **options)
    try:
        task = ray.remote(num_cpus=threads, num_gpus=1 if device.startswith("cuda") else 0,
                          max_retries=0)(_run_in_worker)
        pending = {task.remote(payload(p)): p for p in todo}
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            planned = pending.pop(ready)
            try:
                yield planned, ray.get(ready), None
            except Exception as exc:  # ray wraps the worker's exception; keep its text
                yield planned, None, exc
    finally:
        if started_here:
            ray.shutdown()


EXECUTORS = ("local", "process", "ray")


def run_suite(runs: list[PlannedRun], out: Path, data_root: Path, device: str = "cpu",
              log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
              executor: str = "local", jobs: int = 1, threads: int | None = None,
              time_limit_s: float | None = None, ray_address: str | None = None) -> SuiteOutcome:
    """Run every planned run that has no valid record in `out` yet, writing each record.

    `local` runs one after another in this process; `process` runs `jobs` at a time in
    worker processes; `ray` submits each run as a Ray task (see `_ray_results`).
    Each worker uses `threads` torch threads (default: this process's count), so both executors produce the same numbers. Records are validated and
    written by this process only, atomically, as each run finishes. Resumable methods
    checkpoint after every phase into `out/checkpoints`, so a run killed mid-way
    continues from its last finished phase next time. A run that fails
    (raises, reaches a non-finite loss, or passes `time_limit_s`) leaves NAME.failure and
    NAME.log instead of a record; it is retried the next time the suite runs.
    """
    import torch

    from .checkpoint import FOLDER as CHECKPOINT_FOLDER
    from .checkpoint import discard_checkpoint
    from .records import ensure_writable_dir, record_failure, write_record

    if executor not in EXECUTORS:
        raise unknown_name("executor", executor, EXECUTORS)
    out = ensure_writable_dir(out)
    threads = threads or torch.get_num_threads()
    outcome = SuiteOutcome()
    todo = []
    for planned in runs:
        (outcome.skipped if existing_record(out, planned) else todo).append(planned)
    log(f"{len(runs)} runs: {len(outcome.skipped)} already done, {len(todo)} to run ({executor})")
    checkpoints = out / CHECKPOINT_FOLDER

    def payload(planned: PlannedRun) -> dict:
        return _payload(planned, data_root, device, threads, time_limit_s, checkpoints)

    if executor == "local":
        results = _local_results(todo, payload)
    elif executor == "process":
        results = _process_results(todo, payload, jobs)
    else:
        results = _ray_results(todo, payload, device, threads, jobs, ray_address)
    for index, (planned, record_json, error) in enumerate(results, 1):
        if error is not None:  # one broken run must not lose the others
            reason = f"{type(error).__name__}: {error}"
            outcome.failed.append((planned, reason))
            failure = record_failure(out, planned.protocol, planned.registered.name,
                                     planned.hyperparameters.model_dump(mode="json"), planned.seed,
                                     list(planned.variant.overrides), error)
            log(f"[{index}/{len(todo)}] FAILED {planned.variant.label} seed {planned.seed}: {reason} "
                f"(details: {failure})")
            continue
        record = RunRecord.model_validate_json(record_json)
        if record.run_id != planned.run_id:
            raise RuntimeError(f"worker returned run {record.run_id} for {planned.run_id}")
        write_record(record, out)
        discard_checkpoint(checkpoints, record.run_id)
        for stale in (out / planned.filename).with_suffix(".failure"), (out / planned.filename).with_suffix(".log"):
            stale.unlink(missing_ok=True)  # an earlier failure of this run, now superseded
        outcome.completed.append(planned)
        log(f"[{index}/{len(todo)}] {planned.variant.label} seed {planned.seed}: "
            f"ACC {record.metrics.acc * 100:.2f}% in {record.wall_time_s:.0f} s")
    return outcome
