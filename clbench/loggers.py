"""Logging integrations, opt-in: watch runs in TensorBoard, Weights & Biases or CSV files.

    clbench evaluate naive -p smoke --log tensorboard:runs/ --log wandb:my-project --log csv:logs/

Each `--log` target becomes one runner listener per seed (`RunRequest.listeners`). A
listener sees only what the harness measured, never the strategy, and logs the same
things to every backend, under the run's record name (`<protocol>__<method>__seed<k>__<id>`):

- after phase p: the accuracy row R[p][j] of every task j (`accuracy/task_<j>`, step p),
  the mean over the tasks seen so far, j <= p (`accuracy/seen_mean`), and the new task's
  learning curve (`learning_curve/phase_<p>`, x = training samples processed in the phase);
- at the end: the final metrics (`metrics/<key>`) and the whole accuracy matrix.

The JSON record stays the result; logs are for watching and comparing runs. A backend is
opened at the first phase it logs (a resumed run logs from the phase it resumes at).
Backends: TensorBoard through torch's `SummaryWriter`; W&B through `wandb` (the optional
extra `clbench[wandb]`; `WANDB_MODE=offline` logs without an account); CSV with pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from .errors import ClbenchError
from .metrics import METRIC_LABELS

KINDS = ("tensorboard", "wandb", "csv")
USAGE = "use tensorboard:DIR, wandb or wandb:PROJECT, or csv:DIR"
DEFAULT_PROJECT = "clbench"


@dataclass(frozen=True)
class LogTarget:
    """One `--log` value: a backend and its folder (tensorboard, csv) or project (wandb)."""

    kind: str
    where: str | None


def parse_targets(specs: list[str] | None) -> list[LogTarget]:
    """`--log` values to targets, checked before anything is written: a known kind, a folder
    where one is needed, the library installed. Every mistake is one ClbenchError line."""
    targets = []
    for spec in specs or []:
        kind, _, where = spec.partition(":")
        if kind not in KINDS:
            raise ClbenchError(f"unknown --log target '{spec}'; {USAGE}")
        if kind != "wandb" and not where:
            raise ClbenchError(f"--log {kind} needs a folder: --log {kind}:DIR")
        _check_installed(kind)
        targets.append(LogTarget(kind, where or None))
    return targets


def open_folders(targets: list[LogTarget]) -> None:
    """Create the targets' folders and prove them writable (a one-line error otherwise)."""
    from .records import ensure_writable_dir

    for target in targets:
        if target.kind != "wandb":
            ensure_writable_dir(Path(target.where))


def _check_installed(kind: str) -> None:
    from importlib.util import find_spec

    package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(kind)
    if package and find_spec(package) is None:
        raise ClbenchError(f"--log {kind} needs the '{package}' package: pip install 'clbench[{package}]'")


@dataclass(frozen=True)
class RunInfo:
    """What names a run in every backend."""

    name: str
    config: dict[str, Any]


def run_info(request) -> RunInfo:
    """A RunRequest's name (its record's file stem) and the settings logged with it."""
    from .records import record_filename

    protocol = request.protocol
    name = Path(record_filename(protocol.name, request.method.name, request.seed, request.run_id)).stem
    return RunInfo(name, {
        "protocol": protocol.name, "protocol_version": protocol.version,
        "protocol_hash": protocol.hash, "setup_hash": protocol.setup_hash,
        "environment": protocol.environment.kind, "method": request.method.name,
        "plugin": f"{request.method.plugin} {request.method.version}",
        "hyperparameters": request.hyperparameters.model_dump(mode="json"),
        "seed": request.seed, "run_id": request.run_id,
    })


def listeners(targets: list[LogTarget], request) -> list:
    """One listener per target for one run (a RunRequest); nothing is opened yet."""
    info = run_info(request)
    classes = {"tensorboard": TensorBoardListener, "wandb": WandbListener, "csv": CsvListener}
    return [classes[t.kind](t.where, info) for t in targets]


class _Listener:
    """The runner's events, reduced to what every backend logs; `open` happens on first use."""

    def __init__(self, where: str | None, info: RunInfo):
        self.where, self.info, self.opened = where, info, False

    def phase_end(self, phase: int, accuracy_row: list[float], curve: dict) -> None:
        if not self.opened:
            self.open()
            self.opened = True
        scalars = {f"accuracy/task_{j}": a for j, a in enumerate(accuracy_row)}
        scalars["accuracy/seen_mean"] = fmean(accuracy_row[: phase + 1])
        self.log_phase(phase, scalars, curve["samples"], curve["accuracy"])

    def run_end(self, record) -> None:
        if not self.opened:  # nothing was trained here (a finished run resumed): log it all
            self.open()
            self.opened = True
        metrics = {f"metrics/{key}": getattr(record.metrics, key) for key in METRIC_LABELS}
        self.log_end(len(record.accuracy_matrix) - 1, {k: v for k, v in metrics.items() if v is not None},
                     record.accuracy_matrix)

    def open(self) -> None: ...

    def log_phase(self, phase: int, scalars: dict[str, float], samples: list[int], accuracy: list[float]) -> None: ...

    def log_end(self, last_phase: int, metrics: dict[str, float], matrix: list[list[float]]) -> None: ...


class TensorBoardListener(_Listener):
    """Event files in DIR/<run name>/, read by `tensorboard --logdir DIR`."""

    def open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(self.where) / self.info.name))
        self.writer.add_text("run", "  \n".join(f"{k}: {v}" for k, v in self.info.config.items()))

    def log_phase(self, phase, scalars, samples, accuracy):
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, phase)
        for x, y in zip(samples, accuracy):  # x: samples processed so far in the phase
            self.writer.add_scalar(f"learning_curve/phase_{phase}", y, x)
        self.writer.flush()

    def log_end(self, last_phase, metrics, matrix):
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, last_phase)
        header = "| after phase | " + " | ".join(f"task {j}" for j in range(len(matrix))) + " |"
        rows = [f"| {i} | " + " | ".join(f"{a * 100:.1f}" for a in row) + " |" for i, row in enumerate(matrix)]
        rule = "|---" * (len(matrix) + 1) + "|"
        self.writer.add_text("accuracy_matrix", "\n".join([header, rule, *rows]))
        self.writer.close()


class WandbListener(_Listener):
    """A W&B run in project PROJECT (default 'clbench'), grouped by protocol and method."""

    def open(self) -> None:
        import wandb

        config = self.info.config
        try:
            self.run = wandb.init(project=self.where or DEFAULT_PROJECT, name=self.info.name,
                                  group=f"{config['protocol']}__{config['method']}", config=config)
        except Exception as exc:  # no account, no network, ...: say so in one line
            raise ClbenchError(f"--log wandb cannot start a run ({type(exc).__name__}: {exc}); run "
                               "`wandb login`, or set WANDB_MODE=offline to log without an account") from None
        self.curves: list[list] = []

    def log_phase(self, phase, scalars, samples, accuracy):
        # W&B steps only go forward, so curves (x = samples) are collected into a table
        self.curves += [[phase, x, y] for x, y in zip(samples, accuracy)]
        self.run.log({**scalars, "phase": phase}, step=phase)

    def log_end(self, last_phase, metrics, matrix):
        import wandb

        tasks = [f"task {j}" for j in range(len(matrix))]
        self.run.log({
            "accuracy_matrix": wandb.Table(columns=["after phase", *tasks],
                                           data=[[i, *row] for i, row in enumerate(matrix)]),
            "learning_curves": wandb.Table(columns=["phase", "samples", "accuracy"], data=self.curves),
        }, step=last_phase)
        self.run.summary.update(metrics)
        self.run.finish()


class CsvListener(_Listener):
    """DIR/<run name>/accuracy.csv, learning_curves.csv (rewritten atomically after each
    phase) and metrics.csv (at the end), in long form for pandas."""

    def open(self) -> None:
        self.folder = Path(self.where) / self.info.name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.accuracy: list[tuple] = []
        self.curves: list[tuple] = []

    def _write(self, name: str, columns: list[str], rows: list[tuple]) -> None:
        import pandas as pd

        from .records import write_atomic

        write_atomic(self.folder / name, pd.DataFrame(rows, columns=columns).to_csv(index=False, lineterminator="\n"))

    def log_phase(self, phase, scalars, samples, accuracy):
        self.accuracy += [(phase, int(tag.rsplit("_", 1)[1]), value) for tag, value in scalars.items()
                          if tag.startswith("accuracy/task_")]
        self.curves += [(phase, x, y) for x, y in zip(samples, accuracy)]
        self._write("accuracy.csv", ["phase", "task", "accuracy"], self.accuracy)
        self._write("learning_curves.csv", ["phase", "samples", "accuracy"], self.curves)

    def log_end(self, last_phase, metrics, matrix):
        self._write("metrics.csv", ["metric", "value"],
                    [(tag.split("/", 1)[1], value) for tag, value in metrics.items()])
