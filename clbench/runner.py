"""The runner: one (protocol, method, hyperparameters, seed) in, one validated record out.

Per seed: load the tasks, build the harness's model, optimizer and loss, let the method
build its strategy, measure the untrained model, then for each phase hand the strategy
exactly that phase's experience and measure every task's test accuracy afterwards.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from . import __version__
from . import checkpoint as ckpt
from .audit import RunAudit
from .errors import ClbenchError
from .experiences import make_experience
from .fastpath import TensorFastPath
from .isolation import HarnessSession
from .methods import RegisteredMethod, StrategyContext
from .metrics import compute_metrics
from .models import build_model
from .models.build import place
from .probes import PhaseProbe, register_measure, release_measure
from .protocol import Protocol, TrainingSpec
from .provenance import plugin_digest
from .recordcheck import check_checkpoint
from .records import RunRecord, run_id
from .seeding import derive_seed


@dataclass
class RunRequest:
    """Everything that identifies a run, plus where and how to run it."""

    protocol: Protocol
    method: RegisteredMethod
    hyperparameters: BaseModel
    seed: int
    data_root: Path
    device: str = "cpu"
    overrides: list[str] = field(default_factory=list)
    progress: bool = False
    #: Extra harness-side Avalanche plugins (for `clbench check-plugin`); each may define
    #: ``begin_phase(phase, data)`` to see the phase's training data before the method does.
    observers: list = field(default_factory=list)
    #: Slice minibatches straight out of the phase tensors when that is provably
    #: equivalent to Avalanche's loader (see clbench.fastpath); False for A/B checks.
    fast_path: bool = True
    #: Seconds after which the run is stopped with RunTimeLimit (checked every step).
    time_limit_s: float | None = None
    #: Folder for per-phase checkpoints (None: none). A run finding its own checkpoint
    #: there continues from it; the caller discards it once the record is written.
    checkpoint_dir: Path | None = None
    #: Receives one-line notes (such as "resumed from phase 4").
    notify: Callable[[str], None] | None = None
    #: Harness-side listeners (logging integrations). Each may define
    #: ``phase_end(phase, accuracy_row, curve)`` (curve: {"phase", "samples", "accuracy"}),
    #: called after every phase's measurement, and ``run_end(record)`` with the finished
    #: RunRecord. They never see the strategy.
    listeners: list = field(default_factory=list)
    #: Deny the predictor process (and, with `clbench.sandbox`, this process) the data
    #: root, where the kernel supports Landlock.
    sandbox: bool = False
    #: Where the hyperparameters came from (records.HyperparameterSource as a dict); None:
    #: "default" when they equal the method's defaults, else "user".
    hyperparameter_source: dict | None = None

    @property
    def run_id(self) -> str:
        return run_id(self.protocol.hash, self.method.name,
                      self.hyperparameters.model_dump(mode="json"), self.seed)


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (a GPU when there is one)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ClbenchError(f"unknown device '{name}'; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ClbenchError("--device cuda was asked for, but torch sees no CUDA GPU here")
    if device.type not in ("cpu", "cuda"):
        raise ClbenchError(f"unsupported device '{name}'; use cpu, cuda, cuda:N or auto")
    return device


#: training.optimizer_kernel -> the torch optimizer keyword that selects it.
OPTIMIZER_KERNELS = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def make_optimizer(training: TrainingSpec, model: nn.Module) -> torch.optim.Optimizer:
    """The protocol's optimizer over the model built (and moved to its device) by the harness."""
    kernel = OPTIMIZER_KERNELS[training.optimizer_kernel]
    if training.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=training.lr, momentum=training.momentum,
                               weight_decay=training.weight_decay, **kernel)
    return torch.optim.Adam(model.parameters(), lr=training.lr, weight_decay=training.weight_decay, **kernel)


def seed_everything(seed: int) -> None:
    """Seed every global RNG a strategy might consume (torch, numpy, random)."""
    torch.manual_seed(derive_seed(seed, "torch"))
    np.random.seed(derive_seed(seed, "numpy") % 2**32)
    random.seed(derive_seed(seed, "random"))


def quiet_evaluator():
    """An Avalanche evaluation plugin with no metrics and no loggers: the harness measures.

    Avalanche's `EvaluationPlugin` answers every callback it does not define through
    `__getattribute__`: a caught AttributeError, a new closure and a copy of the
    experience, eight times per training step, which cost 5-7% of a `naive` step on the
    throughput benchmark's MLP (docs/performance.md). With nothing to update, this
    subclass answers every callback with a no-op instead; it is still an
    `EvaluationPlugin`, so strategies that read `strategy.evaluator` keep working.
    """
    from avalanche.training.plugins import EvaluationPlugin

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        return _quiet_evaluator_class(EvaluationPlugin)(loggers=[])


def _no_op(self, strategy, **kwargs):
    return None


def _quiet_evaluator_class(base):
    from avalanche.core import SupervisedPlugin

    callbacks = {name for name in dir(SupervisedPlugin) if name.startswith(("before_", "after_"))}
    methods = {name: _no_op for name in callbacks if name not in vars(base)}

    def _update_metrics_and_loggers(self, strategy, callback):
        if self.metrics or self.loggers:
            return base._update_metrics_and_loggers(self, strategy, callback)
        return []

    methods["_update_metrics_and_loggers"] = _update_metrics_and_loggers
    return type("QuietEvaluationPlugin", (base,), methods)


def build_strategy(request: RunRequest, model: nn.Module, device: torch.device, harness_plugins: list):
    """Call the method's factory and check it returned a strategy the harness can drive."""
    from avalanche.training.templates import SupervisedTemplate

    protocol = request.protocol
    context = StrategyContext(
        model=model,
        optimizer=make_optimizer(protocol.training, model),
        criterion=nn.CrossEntropyLoss(),
        train_epochs=protocol.training.strategy_epochs,
        train_mb_size=protocol.training.batch_size,
        eval_mb_size=protocol.evaluation.batch_size,
        device=device,
        plugins=harness_plugins,
        evaluator=quiet_evaluator(),
        scenario=protocol.benchmark.scenario,
        n_classes=protocol.benchmark.output_classes,
        n_tasks=protocol.benchmark.n_tasks,
        augmentation=protocol.training.augmentation,
    )
    strategy = request.method.method.factory(context, request.hyperparameters)
    if not isinstance(strategy, SupervisedTemplate):
        raise ClbenchError(
            f"method '{request.method.name}' returned {type(strategy).__name__}, "
            "not an Avalanche SupervisedTemplate"
        )
    if any(p not in strategy.plugins for p in context.plugins):
        raise ClbenchError(
            f"method '{request.method.name}' dropped the harness plugins; pass "
            "ctx.strategy_kwargs() (or ctx.plugins) to the strategy"
        )
    return strategy


def _versions() -> dict[str, str]:
    import avalanche
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "avalanche": getattr(avalanche, "__version__", "unknown"),
        "clbench": __version__,
    }


def _hardware(device: torch.device) -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count() or 1,
        "torch_threads": torch.get_num_threads(),
        "accelerator": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def _progress_bar(enabled: bool, total: int, description: str):
    if not enabled:
        return None
    from tqdm import tqdm

    # disable=None: bars only on a terminal, so logs and CI output stay clean
    return tqdm(total=total, desc=description, unit="step", leave=False,
                file=sys.stderr, dynamic_ncols=True, disable=None)


def check_scenario(request: RunRequest) -> None:
    scenario = request.protocol.benchmark.scenario
    if scenario not in request.method.method.scenarios:
        raise ClbenchError(
            f"method '{request.method.name}' supports {'/'.join(request.method.method.scenarios)}"
            f"-incremental protocols, but '{request.protocol.name}' is {scenario}-incremental"
        )


class _Progress:
    """What a run has measured so far: exactly what a checkpoint must carry forward."""

    def __init__(self):
        self.accuracy_matrix: list = []
        self.curves: list = []
        self.samples_trained: list = []
        self.phase_times: list = []
        self.timings: list = []
        self.seen: set[int] = set()

    def to_state(self) -> dict:
        state = {name: value for name, value in vars(self).items() if name != "seen"}
        return {**state, "seen": sorted(self.seen)}

    @classmethod
    def from_state(cls, state: dict) -> "_Progress":
        progress = cls()
        for name, value in state.items():
            setattr(progress, name, set(value) if name == "seen" else value)
        return progress


class _Checkpointer:
    """Saves the run after each phase and restores it from the last one saved."""

    def __init__(self, request: RunRequest, device: torch.device):
        registered = request.method
        self.hooks = registered.method.checkpointing
        folder = request.checkpoint_dir
        self.path = ckpt.checkpoint_path(folder, request.run_id) if folder and self.hooks else None
        self.run_id = request.run_id
        self.stamp = ckpt.stamp(registered.name, registered.version, str(device))
        self.notify = request.notify or (lambda line: None)
        self.request = request

    def save(self, strategy, progress: _Progress, phases_done: int, untrained, setup_time: float, audit,
             elapsed: float) -> None:
        if self.path is None:
            return
        try:
            method_state = self.hooks.save(strategy)
            ckpt.check_plain(method_state, "the method's checkpoint state")
        except TypeError as exc:
            raise ClbenchError(f"cannot checkpoint this method: {exc}") from None
        ckpt.save_checkpoint(self.path, {
            "run_id": self.run_id,
            "stamp": self.stamp,
            "phases_done": phases_done,
            "progress": progress.to_state(),
            "untrained": untrained,
            "setup_time_s": setup_time,
            "elapsed_s": elapsed,
            "model": strategy.model.state_dict(),
            "optimizer": strategy.optimizer.state_dict(),
            "clock": ckpt.clock_state(strategy),
            "method": method_state,
            "rng": ckpt.rng_state(),
            "audit": audit.state(),
        })

    def restore(self, strategy) -> dict | None:
        """Load the checkpoint into `strategy` (RNGs included); None if there is none to use."""
        if self.path is None:
            return None
        payload, reason = ckpt.load_checkpoint(self.path, self.run_id, self.stamp)
        if payload is None:
            if reason != "no checkpoint":
                self.notify(f"ignoring {self.path.name}: {reason}; starting from the first phase")
            return None
        try:  # range- and consistency-checked like a record (clbench.recordcheck)
            request = self.request
            check_checkpoint(payload, request.protocol, request.seed, request.method.method.exemplars(
                request.hyperparameters, request.protocol.benchmark.n_tasks,
                request.protocol.benchmark.n_classes))
        except ValueError as exc:
            self.notify(f"ignoring {self.path.name}: invalid checkpoint ({exc}); starting from the first phase")
            return None
        try:
            strategy.model.load_state_dict(payload["model"])
            strategy.optimizer.load_state_dict(payload["optimizer"])
            if hasattr(strategy, "optimized_param_id"):
                # Avalanche resets the optimizer state on a strategy's first `train` unless
                # it already knows the optimized parameters; after phase 0 it always does
                strategy.optimized_param_id = dict(strategy.model.named_parameters())
            for name, value in payload["clock"].items():
                setattr(strategy.clock, name, value)
            self.hooks.load(strategy, payload["method"])
            ckpt.set_rng_state(payload["rng"])
        except Exception as exc:  # e.g. a method changed its state without a version bump
            self.notify(f"ignoring {self.path.name}: it does not fit this run "
                        f"({type(exc).__name__}); starting from the first phase")
            raise UnusableCheckpoint from None
        self.notify(f"resuming from its checkpoint after phase {payload['phases_done']}")
        return payload


class UnusableCheckpoint(Exception):
    """The checkpoint could not be loaded into the strategy; the run starts over."""


def run(request: RunRequest) -> RunRecord:
    """Train and evaluate one method on one protocol for one seed."""
    check_scenario(request)
    protocol, seed = request.protocol, request.seed
    device = resolve_device(request.device)
    started = time.perf_counter()
    # the plugin's files as the run starts, i.e. as this process imports them: a digest
    # taken when the record is written would name files edited during a long run
    digest = plugin_digest(request.method.plugin)

    # The test sets live in the harness process (clbench.isolation); this process, where
    # the method runs, gets each phase's training data when the phase starts.
    matrix = protocol.env_matrix(seed)
    all_classes = set(range(protocol.benchmark.output_classes))
    task_aware = protocol.benchmark.scenario == "task"
    session: HarnessSession | None = None

    def measure_curve(model, task):
        return session.curve_point(model, task)

    token = register_measure(measure_curve)
    checkpointer = _Checkpointer(request, device)
    observers: list = []
    try:
        deadline = started + request.time_limit_s if request.time_limit_s else None
        probe = PhaseProbe(token, protocol.evaluation.curve_points, deadline, protocol.training.iterations)
        audit = RunAudit(protocol.training.epochs, protocol.training.batch_size,
                         protocol.benchmark.input_size, request.method.method.exemplars(
                             request.hyperparameters, protocol.benchmark.n_tasks,
                             protocol.benchmark.n_classes), iterations=protocol.training.iterations)
        observers = _harness_plugins(request, device)
        built = {}

        def fresh_strategy():
            seed_everything(seed)
            model = place(build_model(protocol.model, protocol.benchmark), protocol.model, device)
            built["model"] = model
            strategy = build_strategy(request, model, device, [probe, audit.plugin, *observers])
            audit.attach(strategy, [probe, *observers], request.method.method.factory)
            return strategy

        strategy = fresh_strategy()
        try:
            resumed = checkpointer.restore(strategy)
        except UnusableCheckpoint:  # half-restored: rebuild from the seed
            strategy, resumed = fresh_strategy(), None
        first_phase = 0 if resumed is None else resumed["phases_done"]
        session = HarnessSession(protocol, request.data_root, seed, device, first_phase,
                                 built["model"], [str(request.data_root)] if request.sandbox else None)
        if resumed is None:
            progress = _Progress()
            untrained = session.score_all(strategy.model)
            setup_time = time.perf_counter() - started
        else:
            progress = _Progress.from_state(resumed["progress"])
            audit.load(resumed["audit"])
            untrained, setup_time = resumed["untrained"], resumed["setup_time_s"]
            started -= resumed["elapsed_s"]  # wall time counts the interrupted attempt's phases

        T = protocol.benchmark.n_tasks
        for phase in range(first_phase, T):
            phase_started = time.perf_counter()
            data = session.phase(phase)
            experience = make_experience(data, phase, progress.seen, all_classes, task_aware)
            planned_steps = protocol.training.planned_steps(len(data.y))
            bar = _progress_bar(request.progress, planned_steps, f"seed {seed} phase {phase + 1}/{T}")
            probe.begin_phase(phase, planned_steps, bar)
            audit.begin_phase(phase, data.x)
            for observer in observers:
                if hasattr(observer, "begin_phase"):
                    observer.begin_phase(phase, data)
            train_started = time.perf_counter()
            try:
                strategy.train(experience)
            finally:
                if bar is not None:
                    bar.close()
            train_seconds = time.perf_counter() - train_started
            audit.end_phase(strategy)  # budget, parameter updates, retained samples
            progress.seen |= set(experience.classes_in_this_experience)
            eval_started = time.perf_counter()
            progress.accuracy_matrix.append(session.score_all(strategy.model))
            eval_seconds = time.perf_counter() - eval_started
            progress.curves.append({"phase": phase, "samples": probe.curve_samples,
                                    "accuracy": probe.curve_accuracy})
            _tell(request.listeners, "phase_end", phase, list(progress.accuracy_matrix[-1]),
                  dict(progress.curves[-1]))
            progress.samples_trained.append(probe.samples_seen)
            progress.phase_times.append(time.perf_counter() - phase_started)
            progress.timings.append({"train_s": train_seconds - probe.measure_seconds,
                                     "curve_eval_s": probe.measure_seconds, "eval_s": eval_seconds})
            if phase < T - 1:
                checkpointer.save(strategy, progress, phase + 1, untrained, setup_time, audit,
                                  time.perf_counter() - started)
    finally:
        release_measure(token)
        _tell(observers, "release")  # e.g. leave autocast
        if session is not None:
            session.close()

    metrics = compute_metrics(progress.accuracy_matrix, untrained, progress.curves,
                              protocol.evaluation.facilitation_threshold)
    record = RunRecord(
        run_id=request.run_id,
        protocol=protocol.resolved(),
        protocol_overrides=list(request.overrides),
        method={
            "name": request.method.name,
            "plugin": request.method.plugin,
            "version": request.method.version,
            "plugin_digest": digest,
            "hyperparameters": request.hyperparameters.model_dump(mode="json"),
            "hyperparameter_source": request.hyperparameter_source or default_source(request),
            "stored_exemplars": request.method.method.exemplars(
                request.hyperparameters, protocol.benchmark.n_tasks, protocol.benchmark.n_classes),
        },
        seed=seed,
        environment_matrix=matrix,
        accuracy_matrix=progress.accuracy_matrix,
        untrained_accuracy=untrained,
        learning_curves=progress.curves,
        samples_trained=progress.samples_trained,
        metrics=metrics,
        versions=_versions(),
        device=str(device),
        hardware=_hardware(device),
        wall_time_s=time.perf_counter() - started,
        setup_time_s=setup_time,
        phase_times_s=progress.phase_times,
        phase_timings=progress.timings,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        audit=audit.summary(),
    )
    _tell(request.listeners, "run_end", record)
    return record


def default_source(request: RunRequest) -> dict:
    """"default" when the hyperparameters are the method's defaults, else "user"."""
    defaults = request.method.method.hyperparameters().model_dump(mode="json")
    same = request.hyperparameters.model_dump(mode="json") == defaults
    return {"kind": "default" if same else "user"}


def _harness_plugins(request: RunRequest, device: torch.device) -> list:
    """The harness's own plugins after the probe and the audit, in the order they act.

    A task-aware experience's loader is made plain first (clbench.experiences.PlainLoader),
    then the fast path may replace it; `request.observers` (check-plugin's) see each
    minibatch before it is augmented (and their `last` plugin after); mixed precision starts
    last, just before the forward.
    """
    from .experiences import PlainLoader

    protocol = request.protocol
    task_aware = protocol.benchmark.scenario == "task"
    plugins: list = [PlainLoader()] if task_aware else []
    if request.fast_path:
        plugins.append(TensorFastPath(device, task_aware))
    plugins += list(request.observers)
    if protocol.training.augmentation != "none":
        from .augment import BatchAugmentation

        channels_last = device.type == "cuda" and protocol.model.architecture != "mlp"
        plugins.append(BatchAugmentation(protocol.benchmark.name, request.seed, device, channels_last,
                                         protocol.benchmark.inputs))
    if protocol.training.precision != "fp32":
        from .precision import MixedPrecision

        plugins.append(MixedPrecision(protocol.training.precision, device))
    # an observer's `last` plugin sees each minibatch as the harness hands it to the method
    plugins += [observer.last for observer in request.observers if getattr(observer, "last", None)]
    return plugins


def _tell(listeners: list, event: str, *args) -> None:
    for listener in listeners:
        handler = getattr(listener, event, None)
        if handler is not None:
            handler(*args)
