"""Suites: named grids of (protocol variant, method, hyperparameters, seed) runs.

A suite expands into runs, each with a stable run id (protocol hash, method,
hyperparameters, seed). Running a suite skips every run whose valid record is already in
the output folder, so an interrupted suite resumes where it stopped and a finished one
costs nothing to re-run. Records are written atomically as each run finishes.

A suite says what runs; `clbench.executors` says where (this process, worker processes,
Ray), and how a Ctrl-C or a dead driver stops them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ClbenchError, DiskFull, HarnessFailure, Interrupted, classify, unknown_name
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
    #: records.HyperparameterSource as a dict; None lets the runner infer default/user.
    hyperparameter_source: dict | None = None

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


#: The paper's class-incremental comparison: the budgeted environments at one budget
#: (r = 0.25 of a phase's new samples), sequential and cumulative as the bounds.
CLASS_INCREMENTAL_ENVIRONMENTS = ("sequential", "uniform", "exponential", "power-law", "cumulative")


def _paper_class_incremental(protocol: str = "smnist-5",
                              environments: tuple[str, ...] = CLASS_INCREMENTAL_ENVIRONMENTS
                              ) -> Callable[[], Suite]:
    """The later version of the power-law paper (class-incremental Split MNIST, Split
    CIFAR-100 and Split Tiny ImageNet; power law combined with LwF): naive and lwf in
    every environment, so lwf inside power-law (or uniform, exponential) rehearsal is the
    combination, and naive in it the environment alone."""

    def suite() -> Suite:
        variants = []
        for method in ("naive", "lwf"):
            for kind in environments:
                budget = () if kind in ("sequential", "cumulative") else ("environment.rehearsal_fraction=0.25",)
                variants.append(Variant(protocol, method, (f"environment.kind={kind}", *budget)))
        return Suite(f"paper-class-incremental{'' if protocol == 'smnist-5' else '-' + protocol.split('-')[0]}",
                     f"{protocol}: naive and lwf in {'/'.join(environments)} "
                     "(same rehearsal budget r=0.25 for the budgeted kinds)",
                     tuple(variants))

    return suite


#: The hyperparameters van de Ven & Tolias 2019 report per scenario (GMvandeVen/continual-
#: learning, `preprints` branch, param_values.py), as clbench's baselines name them.
VANDEVEN_2019_HYPERPARAMETERS = {
    "vdv-smnist-task": {"ewc": ("ewc_lambda=1e7",), "online-ewc": ("ewc_lambda=1e8", "decay_factor=0.8"),
                        "si": ("si_lambda=50",)},
    "vdv-smnist-domain": {"ewc": ("ewc_lambda=1e6",), "online-ewc": ("ewc_lambda=1e8", "decay_factor=0.7"),
                          "si": ("si_lambda=500",)},
    "vdv-smnist-class": {"ewc": ("ewc_lambda=1e8",), "online-ewc": ("ewc_lambda=1e9", "decay_factor=0.8"),
                         "si": ("si_lambda=0.5",)},
    "vdv-pmnist-task": {"ewc": ("ewc_lambda=500",), "online-ewc": ("ewc_lambda=500", "decay_factor=0.8"),
                        "si": ("si_lambda=5",)},
    "vdv-pmnist-domain": {"ewc": ("ewc_lambda=500",), "online-ewc": ("ewc_lambda=1000", "decay_factor=0.9"),
                          "si": ("si_lambda=5",)},
}


def vandeven_penalty(method: str, published: tuple[str, ...]) -> tuple[str, ...]:
    """The clbench hyperparameters that give (online) EWC van de Ven's exact penalty.

    His code squares per-sample gradients taken at the *predicted* label (its default; the
    true label needs `--emp-fi`), and its penalty is ``lambda/2 * sum F (theta -
    theta*)^2``, online ``lambda/2 * gamma * sum F ...``; Avalanche's (clbench's) has
    neither the 1/2 nor the gamma, so clbench's ``ewc_lambda`` is ``lambda/2``, online
    ``lambda * gamma / 2``.
    """
    values = dict(item.split("=", 1) for item in published)
    scale = 0.5 * (float(values["decay_factor"]) if method == "online-ewc" else 1.0)
    values["ewc_lambda"] = f"{float(values['ewc_lambda']) * scale:.12g}"
    return (*(f"{k}={v}" for k, v in values.items()), "fisher=per-sample", "fisher_labels=predicted")


def _vandeven_reference(protocol: str) -> Callable[[], Suite]:
    """van de Ven & Tolias 2019 on one scenario: the bounds (naive sequential, naive on the
    cumulative environment with the same optimizer steps per task), EWC, online EWC and SI with clbench's defaults and with the
    paper's values, LwF, and iCaRL with the paper's 2,000-image budget where it applies.
    EWC and online EWC run the paper's values three times: on Avalanche's Fisher estimate
    (clbench's default), on the per-sample one (`fisher=per-sample`, true labels), and
    with the paper's estimate and penalty exactly (`vandeven_penalty`). The published
    numbers beside them: clbench.references."""

    def suite() -> Suite:
        published = VANDEVEN_2019_HYPERPARAMETERS[protocol]
        preset = get_protocol(protocol)
        # the paper's Offline bound trains the same iterations per task as every other row, on
        # all the data so far (van de Ven's --cummulative): a budget in steps, not in epochs
        # of a growing phase (which would train phase k on k times the steps)
        steps = preset.training.planned_steps(preset.benchmark.train_samples_per_task)
        offline = ("environment.kind=cumulative", "training.epochs=1", f"training.iterations={steps}")
        variants = [Variant(protocol, "naive"), Variant(protocol, "naive", offline)]
        for method in ("ewc", "online-ewc", "si"):
            variants += [Variant(protocol, method), Variant(protocol, method, (), published[method])]
            if method != "si":
                variants.append(Variant(protocol, method, (), (*published[method], "fisher=per-sample")))
                variants.append(Variant(protocol, method, (), vandeven_penalty(method, published[method])))
        variants.append(Variant(protocol, "lwf"))
        if protocol.endswith("-class"):
            variants.append(Variant(protocol, "icarl", (), ("memory_size=2000",)))
        return Suite(f"reference-{protocol}",
                     f"{protocol}: van de Ven & Tolias 2019's methods, clbench defaults and the paper's "
                     "hyperparameters, beside the published ACC", tuple(variants))

    return suite


SUITES: dict[str, Callable[[], Suite]] = {
    "smoke-environments": _smoke_environments,
    "paper-environments": _paper_environments,
    "paper-robustness": _paper_robustness,
    "split-mnist": _split_mnist,
    "paper-class-incremental": _paper_class_incremental("smnist-5"),
    # the same comparison on the image protocols, for users who have the data (GPU runs)
    "paper-class-incremental-scifar100": _paper_class_incremental("scifar100-10-class"),
    # no cumulative bound: its last phase (all 100,000 images) passes the memory bound
    "paper-class-incremental-stinyimagenet": _paper_class_incremental(
        "stinyimagenet-10-class", CLASS_INCREMENTAL_ENVIRONMENTS[:-1]),
    **{f"reference-{name}": _vandeven_reference(name) for name in VANDEVEN_2019_HYPERPARAMETERS},
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


def valid_record(path: Path, rid: str) -> RunRecord | None:
    """The record at `path` if it exists, reads back valid and is run `rid`'s, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        record = read_record(path)
    except ClbenchError:
        return None
    return record if record.run_id == rid else None


def existing_record(folder: Path, run: PlannedRun) -> RunRecord | None:
    """The run's record in `folder` if it is there and valid (an invalid one is redone)."""
    return valid_record(Path(folder) / run.filename, run.run_id)


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
        "hyperparameter_source": planned.hyperparameter_source,
    }


def check_outputs(runs: list[PlannedRun], out: Path) -> None:
    """Every file the runs will write fits the filesystem (one-line error otherwise)."""
    from .checkpoint import FOLDER as CHECKPOINT_FOLDER
    from .preflight import check_run_outputs

    check_run_outputs(out, [planned.filename for planned in runs], CHECKPOINT_FOLDER)


def run_suite(runs: list[PlannedRun], out: Path, data_root: Path, device: str = "cpu",
              log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
              executor: str = "local", jobs: int = 1, threads: int | None = None,
              time_limit_s: float | None = None, ray_address: str | None = None,
              sandbox: bool = False) -> SuiteOutcome:
    """Run every planned run that has no valid record in `out` yet, writing each record.

    `local` runs one after another in this process; `process` runs `jobs` at a time in
    worker processes; `ray` submits each run as a Ray task (see `clbench.executors`).
    Each worker uses `threads` torch threads (default: this process's count), so both executors produce the same numbers. Records are validated and
    written by this process only, atomically, as each run finishes. Resumable methods
    checkpoint after every phase into `out/checkpoints`, so a run killed mid-way
    continues from its last finished phase next time. A run that fails
    (raises, reaches a non-finite loss, or passes `time_limit_s`) leaves NAME.failure and
    NAME.log instead of a record; it is retried the next time the suite runs. A failure
    of the machine (out of memory, a dead worker) is reported as that, never as the
    method's; a full disk stops the suite (`DiskFull`). Ctrl-C stops every run at once,
    keeps every finished record and the latest checkpoints, and raises `Interrupted`.
    """
    import torch

    from .checkpoint import FOLDER as CHECKPOINT_FOLDER
    from .checkpoint import discard_checkpoint, tidy
    from .executors import EXECUTORS, make_executor
    from .records import ensure_writable_dir, record_failure, write_record

    if executor not in EXECUTORS:
        raise unknown_name("executor", executor, EXECUTORS)
    check_outputs(runs, out)
    out = ensure_writable_dir(out)
    threads = threads or torch.get_num_threads()
    outcome = SuiteOutcome()
    todo = []
    for planned in runs:
        (outcome.skipped if existing_record(out, planned) else todo).append(planned)
    removed = tidy(out, [planned.run_id for planned in outcome.skipped])
    if removed:
        log(f"removed {len(removed)} leftover file(s) of interrupted runs (temporary files, "
            "checkpoints of finished runs)")
    log(f"{len(runs)} runs: {len(outcome.skipped)} already done, {len(todo)} to run ({executor})")
    checkpoints = out / CHECKPOINT_FOLDER
    by_id = {planned.run_id: planned for planned in todo}
    done = 0

    def handle(rid: str, record_json: str | None, error: BaseException | None) -> None:
        nonlocal done
        planned = by_id[rid]
        done += 1
        if error is not None:  # one broken run must not lose the others
            _record_failed(planned, error, out, outcome, log, f"[{done}/{len(todo)}]", record_failure)
            return
        record = RunRecord.model_validate_json(record_json)
        if record.run_id != planned.run_id:
            raise RuntimeError(f"worker returned run {record.run_id} for {planned.run_id}")
        write_record(record, out)
        discard_checkpoint(checkpoints, record.run_id)
        for stale in (out / planned.filename).with_suffix(".failure"), (out / planned.filename).with_suffix(".log"):
            stale.unlink(missing_ok=True)  # an earlier failure of this run, now superseded
        outcome.completed.append(planned)
        log(f"[{done}/{len(todo)}] {planned.variant.label} seed {planned.seed}: "
            f"ACC {record.metrics.acc * 100:.2f}% in {record.wall_time_s:.0f} s")

    with make_executor(executor, jobs, device, threads, ray_address) as running:
        try:
            running.start({planned.run_id: {**_payload(planned, data_root, device, threads, time_limit_s,
                                                       checkpoints), "sandbox": sandbox}
                           for planned in todo})
            for rid, record_json, error in running.results():
                handle(rid, record_json, error)
        except KeyboardInterrupt:
            for rid, record_json, error in running.finished():  # ended before the interrupt: keep
                handle(rid, record_json, error)
            kept = sum(existing_record(out, planned) is not None for planned in runs)  # on disk: exact
            raise Interrupted(f"{kept} of {len(runs)} runs have their record in {out}; checkpoints of "
                              "unfinished runs kept; run the same command again to continue") from None
    return outcome


def _record_failed(planned: PlannedRun, error: BaseException, out: Path, outcome: SuiteOutcome,
                   log: Callable[[str], None], counter: str, record_failure) -> None:
    """Note a failed run: NAME.failure and NAME.log, a log line, and the outcome's list.

    A failure of the machine or the harness says so; a full disk stops the suite, since
    no later run could write its record either.
    """
    harness = classify(error)
    reason = (f"{harness} (a failure of the {harness.kind}, not of {planned.registered.name})"
              if harness is not None else f"{type(error).__name__}: {error}")
    outcome.failed.append((planned, reason))
    try:
        failure = record_failure(out, planned.protocol, planned.registered.name,
                                 planned.hyperparameters.model_dump(mode="json"), planned.seed,
                                 list(planned.variant.overrides), error)
        details = f"details: {failure}"
    except (OSError, HarnessFailure) as exc:
        details = f"no failure note written: {exc}"
    log(f"{counter} FAILED {planned.variant.label} seed {planned.seed}: {reason} ({details})")
    if isinstance(harness, DiskFull):
        raise harness
