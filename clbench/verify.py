"""`clbench verify RECORD...`: re-run recorded runs and compare every result field.

A record's seal is an unkeyed sha256, so anyone can edit a record and reseal it; what a
reader can always do is run it again. `verify` reads each record (schema, seal and the
consistency checks of clbench.recordcheck), refuses when the installed plugin is not the
one that produced it (name, version and the digest of its installed files, with the
`pip install` line that fixes it), re-runs the record's protocol, method,
hyperparameters and seed through the suite executors with the record's torch thread
count, and compares:

- on the same hardware, versions and device: every compared field exactly;
- otherwise: within the per-field tolerances in `TOLERANCES` (float results of training
  differ across CPUs, BLAS builds and library versions; counts never do).

Compared: `COMPARED`. Not compared: wall and phase times, creation time, hardware and
versions (they decide which of the two modes applies).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ClbenchError
from .records import RunRecord, read_record

#: The result fields `verify` compares.
COMPARED = ("run_id", "environment_matrix", "untrained_accuracy", "accuracy_matrix",
            "learning_curves", "samples_trained", "metrics", "audit")

#: Absolute tolerance per field when hardware, versions or device differ (0: exact).
#: Field names are dotted paths with list indices dropped.
TOLERANCES = {
    "run_id": 0,
    "environment_matrix": 0,
    "untrained_accuracy": 0.01,  # the same initial weights; a few predictions may flip
    "accuracy_matrix": 0.05,
    "learning_curves.samples": 0,
    "learning_curves.accuracy": 0.05,
    "learning_curves.phase": 0,
    "samples_trained": 0,
    "metrics.acc": 0.03,
    "metrics.bwt": 0.03,
    "metrics.forgetting": 0.03,
    "metrics.fwt": 0.03,
    "metrics.learning_accuracy": 0.03,
    "metrics.ff_auc": 0.03,
    "metrics.forward_facilitation.threshold": 0,
    "metrics.forward_facilitation.auc": 0.05,
    "metrics.forward_facilitation.mean_auc": 0.03,
    "metrics.forward_facilitation.auc_slope": 0.05,
    # a threshold crossing can move by whole curve points across machines
    "metrics.forward_facilitation.samples_to_threshold": None,
    "audit": 0,  # every count and limit
}


@dataclass
class Mismatch:
    field: str
    recorded: Any
    rerun: Any
    tolerance: float | None

    def __str__(self) -> str:
        bound = "exact" if not self.tolerance else f"tolerance {self.tolerance}"
        return f"{self.field}: recorded {_short(self.recorded)}, re-run {_short(self.rerun)} ({bound})"


@dataclass
class Verdict:
    path: Path
    record: RunRecord
    exact: bool = True
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None
    #: Every compared field equal to the last bit, even where tolerances applied.
    identical: bool = False
    #: Which of hardware, versions and device differ from the record's (field paths).
    differs: list[str] = field(default_factory=list)

    @property
    def confirmed(self) -> bool:
        return self.error is None and not self.mismatches


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_installed(record: RunRecord, where: Path):
    """The installed method that produced `record`, or a ClbenchError saying what to install."""
    from .plugins import get_registry
    from .provenance import install_line, plugin_digest

    info = record.method
    wanted = install_line(info.plugin, info.version)
    registry = get_registry()
    if info.name not in registry.methods:
        raise ClbenchError(f"{where}: method '{info.name}' is not installed; {wanted}")
    registered = registry.methods[info.name]
    if (registered.plugin, registered.version) != (info.plugin, info.version):
        raise ClbenchError(f"{where}: '{info.name}' comes from {registered.plugin} "
                           f"{registered.version} here, the record from {info.plugin} {info.version}; "
                           f"{wanted}")
    if info.plugin_digest is not None:
        installed = plugin_digest(info.plugin)
        if installed != info.plugin_digest:
            raise ClbenchError(f"{where}: the installed {info.plugin} {info.version} differs from the "
                               f"one that wrote the record (files digest {installed} != "
                               f"{info.plugin_digest}); {wanted}")
    registered.method.parse_hyperparameters(info.hyperparameters)
    return registered


def payload(record: RunRecord, data_root: Path, device: str | None) -> dict:
    """The executor payload that re-runs `record` (its own torch thread count)."""
    return {
        "checkpoint_dir": None,
        "time_limit_s": None,
        "protocol": {k: v for k, v in record.protocol.items() if k != "hash"},
        "method": record.method.name,
        "hyperparameters": record.method.hyperparameters,
        "seed": record.seed,
        "data_root": str(data_root),
        "device": device or record.device,
        "overrides": list(record.protocol_overrides),
        "threads": record.hardware.torch_threads,
        "hyperparameter_source": (record.method.hyperparameter_source.model_dump(mode="json")
                                  if record.method.hyperparameter_source else None),
    }


def setting_differences(recorded: RunRecord, rerun: RunRecord) -> list[str]:
    """The hardware, versions and device fields that differ, e.g. ['hardware.platform'];
    none: the same setting, where results must be identical."""
    a = recorded.model_dump(mode="json", include={"hardware", "versions", "device"})
    b = rerun.model_dump(mode="json", include={"hardware", "versions", "device"})
    found: list[Mismatch] = []
    for name in ("hardware", "versions", "device"):
        _compare(a.get(name), b.get(name), name, name, True, found)
    return [m.field for m in found]


def compare(recorded: RunRecord, rerun: RunRecord, exact: bool) -> list[Mismatch]:
    """Every compared field where `rerun` differs from `recorded` beyond its tolerance."""
    a = recorded.model_dump(mode="json", include=set(COMPARED))
    b = rerun.model_dump(mode="json", include=set(COMPARED))
    if a.get("audit") is None:  # a record written before the audit existed
        a.pop("audit", None)
        b.pop("audit", None)
    found: list[Mismatch] = []
    for name in COMPARED:
        if name in a:
            _compare(a[name], b.get(name), name, name, exact, found)
    return found


def _tolerance(key: str) -> float | None:
    while key:
        if key in TOLERANCES:
            return TOLERANCES[key]
        key = key.rpartition(".")[0]
    return 0


def _compare(x: Any, y: Any, where: str, key: str, exact: bool, found: list[Mismatch]) -> None:
    tolerance = 0 if exact else _tolerance(key)
    if isinstance(x, dict) and isinstance(y, dict):
        for name in sorted(set(x) | set(y)):
            _compare(x.get(name), y.get(name), f"{where}.{name}", f"{key}.{name}", exact, found)
        return
    if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for index, (p, q) in enumerate(zip(x, y)):
            _compare(p, q, f"{where}[{index}]", key, exact, found)
        return
    if tolerance is None:  # not compared across machines
        return
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
    if numbers and tolerance and abs(x - y) <= tolerance:
        return
    if x != y:
        found.append(Mismatch(where, x, y, tolerance))


def verify(paths: list[Path], data_root: Path, device: str | None = None, executor: str = "local",
           jobs: int = 1, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)
           ) -> list[Verdict]:
    """Re-run every record in `paths` and compare; bad input raises ClbenchError first."""
    from .executors import make_executor

    verdicts = []
    for path in paths:
        record = read_record(path)
        check_installed(record, path)
        verdicts.append(Verdict(Path(path), record))
    from .isolation import preload
    from .protocol import Protocol

    benchmarks = {Protocol.model_validate(payload(v.record, data_root, device)["protocol"]).benchmark
                  for v in verdicts}
    for benchmark in benchmarks:
        preload(benchmark, data_root)  # a missing dataset is bad input (exit 2), before any re-run
    payloads = {index: payload(v.record, data_root, device) for index, v in enumerate(verdicts)}
    threads = max((p["threads"] for p in payloads.values()), default=1)
    log(f"re-running {len(verdicts)} record(s) ({executor})")
    with make_executor(executor, jobs, device or "cpu", threads) as running:
        running.start(payloads)
        for index, record_json, error in running.results():
            verdict = verdicts[index]
            if error is not None:
                verdict.error = f"the re-run failed: {type(error).__name__}: {error}"
                continue
            rerun = RunRecord.model_validate_json(record_json)
            verdict.differs = setting_differences(verdict.record, rerun)
            verdict.exact = not verdict.differs
            verdict.mismatches = compare(verdict.record, rerun, verdict.exact)
            verdict.identical = not verdict.mismatches if verdict.exact else not compare(verdict.record, rerun, True)
    return verdicts


def report(verdicts: list[Verdict], shown: int = 10) -> str:
    """One line per record, then each mismatching field (at most `shown` per record)."""
    lines = []
    for v in verdicts:
        differ = ", ".join(v.differs[:3]) + (" and more" if len(v.differs) > 3 else "")
        if v.exact:
            mode = "exact: same hardware, versions and device"
        elif v.identical:
            mode = f"every compared field identical, though {differ} differ(s)"
        else:
            mode = f"within per-field tolerances: {differ} differ(s)"
        if v.error:
            lines.append(f"FAILED    {v.path}: {v.error}")
            continue
        lines.append(f"{'CONFIRMED' if v.confirmed else 'MISMATCH '} {v.path} ({mode})")
        for mismatch in v.mismatches[:shown]:
            lines.append(f"  {mismatch}")
        if len(v.mismatches) > shown:
            lines.append(f"  ... and {len(v.mismatches) - shown} more differing fields")
    confirmed = sum(v.confirmed for v in verdicts)
    lines.append(f"{confirmed} of {len(verdicts)} record(s) confirmed")
    return "\n".join(lines)
