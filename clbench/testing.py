"""Checks for method plugins, for `clbench check-plugin` and for plugin authors' own tests.

    from clbench.testing import check_method

    def test_my_method_passes_the_clbench_checks():
        report = check_method("my-method", data_root="path/to/torchvision/root")
        assert report.passed, report.summary()

Each check runs the method through the normal harness code path on a small protocol
(`smoke` by default) and watches what it does.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .budgets import step_limit
from .errors import AuditFailure, BudgetExceeded, ClbenchError, MemoryExceeded, UncountedUpdate
from .plugins import get_registry
from .presets import get_protocol
from .protocol import apply_overrides


#: The check each audit failure fails (clbench.audit enforces them in every run).
_AUDIT_CHECKS = {
    BudgetExceeded: "keeps to the training budget (optimizer steps and forward samples per phase)",
    UncountedUpdate: "updates the model only through the harness's optimizer steps",
    MemoryExceeded: "retains no more training samples than it declares (stored_exemplars)",
}


@dataclass
class Check:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class CheckReport:
    method: str
    checks: list[Check] = field(default_factory=list)
    record: object | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def add(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append(Check(name, bool(passed), detail))

    def summary(self) -> str:
        lines = [f"{'PASS' if c.passed else 'FAIL'}  {c.name}" + (f": {c.detail}" if c.detail else "")
                 for c in self.checks]
        verdict = "all checks passed" if self.passed else "some checks FAILED"
        return "\n".join(lines + [f"{self.method}: {verdict}"])


def _row_keys(x) -> list[bytes]:
    """A digest per input row, to recognise training samples without storing them."""
    rows = x.detach().cpu().contiguous().numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=12).digest() for row in rows]


def _make_observer():
    """An Avalanche plugin that checks every training minibatch and counts iterations."""
    from avalanche.core import SupervisedPlugin

    class TrainingObserver(SupervisedPlugin):
        def __init__(self):
            super().__init__()
            self.given: set[bytes] = set()
            self.foreign_batches = 0
            self.iterations: list[int] = []
            self.phase_sizes: list[int] = []
            self.settings: list[tuple[int, int]] = []
            self.nonfinite_losses = 0
            self._foreign = False

        def begin_phase(self, phase, data):
            self.given.update(_row_keys(data.x))
            self.phase_sizes.append(len(data.y))
            self.iterations.append(0)

        def before_training_exp(self, strategy, *args, **kwargs):
            self.settings.append((strategy.train_epochs, strategy.train_mb_size))

        def before_forward(self, strategy, *args, **kwargs):
            # before the harness's training augmentation (clbench.augment) crops and flips it
            self._foreign = not all(key in self.given for key in _row_keys(strategy.mb_x))

        def after_forward(self, strategy, *args, **kwargs):
            # what the model was given: the method's own before_forward runs after the harness's
            # plugins, so rows it added are caught here, against the batch the harness produced
            forwarded = _row_keys(strategy.mb_x)
            if self._foreign or not all(k in self.given or k in self.last.produced for k in forwarded):
                self.foreign_batches += 1

        def before_backward(self, strategy, *args, **kwargs):
            self.iterations[-1] += 1
            if not math.isfinite(float(strategy.loss.detach())):
                self.nonfinite_losses += 1

    class AfterHarness(SupervisedPlugin):
        """Placed after the harness's own plugins: notes the (augmented) batch they produced."""

        def __init__(self):
            super().__init__()
            self.produced: set[bytes] = set()

        def before_forward(self, strategy, *args, **kwargs):
            self.produced = set(_row_keys(strategy.mb_x))

    observer = TrainingObserver()
    observer.last = AfterHarness()  # clbench.runner places an observer's `last` after its own plugins
    return observer


def _check_hyperparameter_model(report: CheckReport, registered) -> bool:
    model = registered.method.hyperparameters
    try:
        defaults = model()
    except ValidationError as exc:
        report.add("hyperparameter defaults are valid", False, str(exc.errors()[0]["msg"]))
        return False
    report.add("hyperparameter defaults are valid", True, str(defaults.model_dump()) or "none")
    try:
        model.model_validate({"__not_a_hyperparameter__": 1})
        report.add("unknown hyperparameters are rejected", False, "set model_config extra='forbid'")
    except ValidationError:
        report.add("unknown hyperparameters are rejected", True)
    accepted = []
    for name, info in model.model_fields.items():
        if info.annotation in (int, float, bool):
            try:
                model.model_validate({name: "not-a-number"})
                accepted.append(name)
            except ValidationError:
                pass
    report.add("badly typed hyperparameters are rejected", not accepted,
               f"accepted text for {', '.join(accepted)}" if accepted else "")
    return True


def check_method(method: str, data_root: str | Path | None = None, protocol=None,
                 overrides: list[str] | None = None, device: str = "cpu",
                 hyperparameters: dict | None = None) -> CheckReport:
    """Run the standard checks for `method` and return a report (never raises for a failing check).

    `protocol` is a protocol name or a `Protocol` (default: `smoke`, or a small `smnist-5`
    for class-only methods); `hyperparameters` are `--hp` values (default: the method's
    defaults), so the configuration a table reports is the one checked.
    """
    from .datasets import resolve_data_root
    from .runner import RunRequest, run

    registered = get_registry().get(method)
    report = CheckReport(method)
    report.add("method is registered", True, f"{registered.plugin} {registered.version}")
    if not _check_hyperparameter_model(report, registered):
        return report
    hp = registered.method.parse_hyperparameters(dict(hyperparameters or {}))
    if hyperparameters:
        report.add("hyperparameters under test are valid", True, str(hp.model_dump()))

    if protocol is None:
        protocol = "smoke" if "domain" in registered.method.scenarios else "smnist-5"
        if protocol == "smnist-5" and not overrides:
            overrides = ["benchmark.train_samples_per_task=2000", "benchmark.test_samples_per_task=500",
                         "evaluation.curve_test_samples=500"]
    base = get_protocol(protocol) if isinstance(protocol, str) else protocol
    resolved = apply_overrides(base, list(overrides or []))
    observer = _make_observer()
    request = RunRequest(resolved, registered, hp, seed=0,
                         data_root=resolve_data_root(data_root), device=device,
                         overrides=list(overrides or []), observers=[observer])
    try:
        record = run(request)
    except AuditFailure as exc:  # the harness's audit stopped it: name the rule it broke
        report.add(f"completes {resolved.name}", False, f"stopped by the audit: {type(exc).__name__}")
        report.add(_AUDIT_CHECKS.get(type(exc), "passes the harness's audit"), False, str(exc))
        _check_settings(report, observer, resolved)
        return report
    except ClbenchError as exc:
        report.add(f"completes {resolved.name}", False, str(exc))
        return report
    except Exception as exc:  # the method crashed: that is a failed check, not a crash of ours
        report.add(f"completes {resolved.name}", False, f"{type(exc).__name__}: {exc}")
        return report
    report.record = record
    report.add(f"completes {resolved.name}", True,
               f"ACC {record.metrics.acc:.3f}, {record.wall_time_s:.1f} s")
    report.add("returns an Avalanche SupervisedTemplate that keeps the harness plugins", True)

    _check_settings(report, observer, resolved)
    # the phase's data plus the memory the method declares (iCaRL, GDumb train on it too)
    memory = registered.method.exemplars(hp, resolved.benchmark.n_tasks, resolved.benchmark.n_classes)
    limits = [step_limit(resolved.training.epochs, resolved.training.batch_size, n, memory,
                         resolved.training.iterations)
              for n in observer.phase_sizes]
    over = [(p, it, lim) for p, (it, lim) in enumerate(zip(observer.iterations, limits)) if it > lim]
    audit = record.audit
    report.add(_AUDIT_CHECKS[BudgetExceeded], not over,
               f"phase {over[0][0]}: {over[0][1]} steps > {over[0][2]}" if over else
               "steps/limit per phase " + ", ".join(f"{p.steps}/{p.step_limit}" for p in audit.phases)
               + "; forward samples/limit " + ", ".join(f"{p.forward_samples}/{p.forward_limit}"
                                                        for p in audit.phases))
    report.add(_AUDIT_CHECKS[UncountedUpdate], True,
               f"{sum(p.update_checks for p in audit.phases)} parameter checks")
    report.add(_AUDIT_CHECKS[MemoryExceeded], True,
               f"at most {audit.stored_samples} training samples retained, {memory} declared")
    report.add("trains only on the experiences it was given", observer.foreign_batches == 0,
               f"{observer.foreign_batches} minibatches held samples the harness never handed over"
               if observer.foreign_batches else "")
    report.add("training losses are finite", observer.nonfinite_losses == 0,
               f"{observer.nonfinite_losses} non-finite losses" if observer.nonfinite_losses else "")
    chance = 1.0 / resolved.benchmark.output_classes  # per head: 1/2 on task-incremental Split MNIST
    learned = max(record.accuracy_matrix[j][j] for j in range(len(record.accuracy_matrix)))
    report.add("learns something (best new-task accuracy above chance)", learned > min(2 * chance, (1 + chance) / 2),
               f"best R[j][j] = {learned:.3f}")
    _check_resume(report, request, record)
    return report


def _check_settings(report: CheckReport, observer, resolved) -> None:
    expected = (resolved.training.strategy_epochs, resolved.training.batch_size)
    off = [s for s in observer.settings if s != expected]
    report.add("uses the protocol's epochs and batch size", not off,
               f"expected (epochs, batch) {expected}, strategy had {off[0]}" if off else "")


def check_record_configuration(path: str | Path, data_root: str | Path | None = None, protocol=None,
                               overrides: list[str] | None = None, device: str = "cpu") -> CheckReport:
    """The standard checks on the method and hyperparameters a record reports.

    The record must be valid and its plugin installed as recorded (`clbench verify`'s
    rule); the checks run on the record's own protocol unless `protocol` (a name or a
    `Protocol`) and `overrides` choose a cheaper one.
    """
    from .protocol import Protocol
    from .records import read_record
    from .verify import check_installed

    record = read_record(Path(path))
    check_installed(record, Path(path))
    if protocol is None:
        protocol = Protocol.model_validate({k: v for k, v in record.protocol.items() if k != "hash"})
    return check_method(record.method.name, data_root, protocol, overrides, device,
                        record.method.hyperparameters)


class _Interrupted(Exception):
    """Raised by `_Interrupter` to stop a run the way a kill would: between two phases."""


class _Interrupter:
    """A harness observer that stops the run before phase `at` and notes the phases it saw."""

    def __init__(self, at: int | None):
        self.at = at
        self.phases: list[int] = []

    def begin_phase(self, phase, data):
        if phase == self.at:
            raise _Interrupted
        self.phases.append(phase)


#: What a resumed run must reproduce exactly (timings and creation time naturally differ).
RESUMED_FIELDS = ("run_id", "accuracy_matrix", "untrained_accuracy", "learning_curves",
                  "samples_trained", "metrics", "environment_matrix", "audit")


def resumed_differences(resumed, uninterrupted) -> list[str]:
    """The `RESUMED_FIELDS` in which two records of the same run differ."""
    a = resumed.model_dump(mode="json", include=set(RESUMED_FIELDS))
    b = uninterrupted.model_dump(mode="json", include=set(RESUMED_FIELDS))
    return [name for name in RESUMED_FIELDS if a[name] != b[name]]


def resume_matches(request, interrupt_before: int, uninterrupted) -> tuple[bool, str]:
    """Stop `request`'s run before phase `interrupt_before`, resume it, compare with `uninterrupted`.

    The run is stopped by an exception at the start of that phase, which leaves exactly
    what a SIGKILL at that moment leaves: the checkpoint written after the previous phase.
    """
    import dataclasses
    import tempfile

    from .runner import run

    with tempfile.TemporaryDirectory(prefix="clbench-resume-") as folder:
        base = dataclasses.replace(request, checkpoint_dir=Path(folder), observers=[])
        try:
            run(dataclasses.replace(base, observers=[_Interrupter(interrupt_before)]))
            return False, "the interrupted run was not interrupted"
        except _Interrupted:
            pass
        watcher = _Interrupter(None)
        resumed = run(dataclasses.replace(base, observers=[watcher]))
    if not watcher.phases or watcher.phases[0] != interrupt_before:
        return False, f"the resumed run trained phases {watcher.phases}, not from phase {interrupt_before}"
    differing = resumed_differences(resumed, uninterrupted)
    if differing:
        return False, f"resumed run differs from the uninterrupted one in {', '.join(differing)}"
    return True, f"stopped before phase {interrupt_before}, resumed, identical record"


def _check_resume(report: CheckReport, request, record) -> None:
    name = "resumes from a per-phase checkpoint with an identical record"
    if request.method.method.checkpointing is None:
        report.add(name + " (not declared: a killed run restarts from phase 0)", True)
        return
    n_phases = request.protocol.benchmark.n_tasks
    if n_phases < 2:
        report.add(name, True, "single-phase protocol, nothing to resume")
        return
    try:
        passed, detail = resume_matches(request, min(2, n_phases - 1), record)
    except Exception as exc:  # a failing save or load hook is a failed check
        passed, detail = False, f"{type(exc).__name__}: {exc}"
    report.add(name, passed, detail)
