"""Run records: one validated JSON file per (protocol, method, hyperparameters, seed).

A record holds everything needed to rebuild a leaderboard row and to check where it came
from: the resolved protocol with its hash, the method and the distribution that provided
it, the measured accuracy matrix and learning curves, and the software and hardware. Files
are written atomically (temporary file, fsync, rename), so a killed run never leaves a
half-written record.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import BadPath, ClbenchError, DiskFull, HarnessFailure
from .protocol import SETUP_FIELDS, Protocol, content_hash, environment_label
from .recordcheck import check_record
from .tmpfiles import tmp_prefix

SCHEMA_VERSION = 1

Accuracy = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0.0)]
Difference = Annotated[float, Field(ge=-1.0, le=1.0)]


class _Strict(BaseModel):
    # NaN and infinities are refused in every float field (one line, never a crash later)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class HyperparameterSource(_Strict):
    """Where a run's hyperparameters came from: the method's defaults, the user (`--hp`,
    a suite's variant), or a tuning record (`evaluate --hp-from`, docs/tuning.md)."""

    kind: Literal["default", "user", "tuned"]
    #: For "tuned": the tuning record's id, how many settings it compared, and on which stream.
    tuning_id: str | None = None
    grid_size: Count | None = None
    stream: str | None = None


class MethodInfo(_Strict):
    name: str
    plugin: str
    version: str
    hyperparameters: dict[str, Any]
    stored_exemplars: int = Field(ge=0)
    #: sha256 over the plugin distribution's installed files (clbench.provenance); None
    #: for methods registered in-process and for records written before it existed.
    plugin_digest: str | None = None
    #: None in records written before it existed.
    hyperparameter_source: HyperparameterSource | None = None


class Versions(_Strict):
    python: str
    torch: str
    torchvision: str
    avalanche: str
    clbench: str


class Hardware(_Strict):
    platform: str
    processor: str
    cpu_count: int = Field(ge=1)
    torch_threads: int = Field(ge=1)
    accelerator: str | None = None


class LearningCurve(_Strict):
    phase: Count
    samples: list[Count]
    accuracy: list[Accuracy]


class PhaseTiming(_Strict):
    """Where a phase's wall time went: the method's training, and the harness's measuring."""

    train_s: Seconds
    curve_eval_s: Seconds
    eval_s: Seconds


class ForwardFacilitation(_Strict):
    threshold: Accuracy
    samples_to_threshold: list[Count | None]
    auc: list[Accuracy]
    mean_auc: Accuracy | None
    auc_slope: Difference | None


class Metrics(_Strict):
    acc: Accuracy
    bwt: Difference | None
    forgetting: Difference | None
    fwt: Difference | None
    learning_accuracy: Accuracy
    ff_auc: Accuracy | None
    forward_facilitation: ForwardFacilitation


class AuditPhase(_Strict):
    """One phase as the harness counted it (clbench.audit; limits from clbench.budgets)."""

    phase: Count
    phase_samples: Count
    steps: Count
    step_limit: Count
    forward_samples: Count
    forward_limit: Count
    stored_samples: Count
    stored_limit: Count
    update_checks: Count
    verdict: Literal["pass"]


class RunAudit(_Strict):
    """A record's audit block: the harness's counts, per phase and for the run."""

    rules_version: Literal[1]
    declared_exemplars: Count
    #: Most training samples the strategy retained at any phase end (measured, not declared).
    stored_samples: Count
    steps: Count
    forward_samples: Count
    phases: list[AuditPhase]


class RunRecord(_Strict):
    """The schema of a completed run's JSON record."""

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    status: Literal["completed"] = "completed"
    protocol: dict[str, Any]
    protocol_overrides: list[str] = []
    method: MethodInfo
    seed: Count
    environment_matrix: list[list[Count]]
    accuracy_matrix: list[list[Accuracy]]
    untrained_accuracy: list[Accuracy]
    learning_curves: list[LearningCurve]
    samples_trained: list[Count]
    metrics: Metrics
    versions: Versions
    device: str
    hardware: Hardware
    wall_time_s: Seconds
    setup_time_s: Seconds
    phase_times_s: list[Seconds]
    phase_timings: list[PhaseTiming]
    created_at: str
    #: The harness's per-phase counts (clbench.audit); None in records written before it.
    audit: RunAudit | None = None
    #: sha256 over the canonical JSON of every other field (see `integrity_hash`); a record
    #: edited by hand no longer matches and is refused when read.
    integrity: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "RunRecord":
        body = {k: v for k, v in self.protocol.items() if k != "hash"}
        try:
            protocol = Protocol.model_validate(body)
        except ValidationError as exc:
            raise ValueError(f"protocol is not a valid clbench protocol: {exc.errors()[0]['msg']}") from None
        if protocol.hash != self.protocol.get("hash"):
            raise ValueError("protocol hash does not match the protocol's content")
        T = protocol.benchmark.n_tasks
        for name, matrix in (("accuracy_matrix", self.accuracy_matrix),
                             ("environment_matrix", self.environment_matrix)):
            if len(matrix) != T or any(len(row) != T for row in matrix):
                raise ValueError(f"{name} must be {T}x{T} for this protocol")
        if len(self.untrained_accuracy) != T or len(self.learning_curves) != T:
            raise ValueError(f"untrained_accuracy and learning_curves need {T} entries")
        if self.run_id != run_id(self.protocol["hash"], self.method.name,
                                 self.method.hyperparameters, self.seed):
            raise ValueError("run_id does not match protocol hash, method, hyperparameters and seed")
        check_record(self, protocol)  # metrics recomputed, numbers consistent (clbench.recordcheck)
        return self

    @property
    def protocol_name(self) -> str:
        return self.protocol["name"]

    @property
    def protocol_hash(self) -> str:
        return self.protocol["hash"]

    @property
    def setup_hash(self) -> str:
        """The protocol hash without the environment: records sharing it differ only there."""
        return content_hash(self.protocol, SETUP_FIELDS)

    @property
    def environment_label(self) -> str:
        return environment_label(self.protocol["environment"])


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def integrity_hash(record: RunRecord) -> str:
    """sha256 of the record's canonical JSON without its `integrity` field."""
    body = record.model_dump(mode="json", exclude={"integrity"})
    # fields added later are left out while empty, so older records keep their seal
    if body.get("audit") is None:
        body.pop("audit", None)
    for key in ("plugin_digest", "hyperparameter_source"):
        if body["method"].get(key) is None:
            body["method"].pop(key, None)
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def sealed(record: RunRecord) -> RunRecord:
    """The record with its integrity hash filled in."""
    return record.model_copy(update={"integrity": integrity_hash(record)})


def run_id(protocol_hash: str, method: str, hyperparameters: dict[str, Any], seed: int) -> str:
    """Stable id of a run: the same protocol, method, hyperparameters and seed give the same id."""
    key = canonical_json([protocol_hash, method, hyperparameters, seed])
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def record_filename(protocol_name: str, method: str, seed: int, rid: str) -> str:
    return f"{protocol_name}__{method}__seed{seed}__{rid[:10]}.json"


def ensure_writable_dir(folder: Path) -> Path:
    """Create `folder` if needed and prove it is writable, before any compute is spent."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".clbench-probe-"):
            pass
    except OSError as exc:
        raise ClbenchError(f"output folder '{folder}' is not writable ({exc.strerror or exc})") from None
    return folder


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write `content` to `path` so that readers see either the old file or the whole new one.

    The file gets the usual permissions (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    data = content.encode() if isinstance(content, str) else content
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=tmp_prefix(path), suffix=".tmp")
    except OSError as exc:
        raise (write_failure(exc, path, len(data)) or exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        failure = write_failure(exc, path, len(data)) if isinstance(exc, OSError) else None
        if failure is not None:
            raise failure from exc
        raise


def write_failure(exc: OSError, path: Path, size: int) -> HarnessFailure | None:
    """A full disk or a refused name as the machine's failure, with the path and the size."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"disk full while writing '{path}' ({size:,} bytes): {exc.strerror}")
    if exc.errno == errno.ENAMETOOLONG:
        return BadPath(f"file name too long for the filesystem: '{path}'")
    return None


def write_record(record: RunRecord, folder: Path) -> Path:
    """Seal and write `record` atomically; returns its path."""
    path = Path(folder) / record_filename(record.protocol_name, record.method.name, record.seed, record.run_id)
    write_atomic(path, sealed(record).model_dump_json(indent=1) + "\n")
    return path


#: The largest record file read (checked with stat before reading): a 1,000-task run's
#: record is about 34 MB, while parsing a 100 MB file would take seconds and gigabytes.
MAX_RECORD_BYTES = 64 * 2**20


def read_bounded(path: Path, kind: str = "record") -> bytes:
    """The bytes of a record file, refusing one too large to be a record (checked with stat
    before reading) and turning OS errors into one line naming the file."""
    try:
        size = os.stat(path).st_size
        if size > MAX_RECORD_BYTES:
            raise ClbenchError(f"{kind} '{path}' is {size / 2**20:.0f} MiB; records are at most "
                               f"{MAX_RECORD_BYTES // 2**20} MiB, so this is not one")
        return Path(path).read_bytes()
    except OSError as exc:
        raise ClbenchError(f"cannot read {kind} '{path}': {exc.strerror or exc}") from None


def read_record(path: Path) -> RunRecord:
    """Load and validate one record, with a one-line error naming the file."""
    data = read_bounded(path)
    try:
        record = RunRecord.model_validate_json(data)
    except ValidationError as exc:
        if _seal_broken(Path(path)):  # edited after clbench wrote it: say that, not what broke
            raise ClbenchError(f"record '{path}' fails its integrity check (sha256 mismatch): it was "
                               "changed after clbench wrote it") from None
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ClbenchError(f"invalid record '{path}': {where + ': ' if where else ''}{first['msg']}") from None
    if record.integrity != integrity_hash(record):
        raise ClbenchError(f"record '{path}' fails its integrity check (sha256 mismatch): it was "
                           "changed after clbench wrote it")
    return record


def _seal_broken(path: Path) -> bool:
    """True if the file is a sealed JSON record whose seal does not match its content."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or not isinstance(data.get("integrity"), str) or not data["integrity"]:
        return False
    body = {key: value for key, value in data.items() if key != "integrity"}
    if body.get("audit") is None:
        body.pop("audit", None)
    if isinstance(body.get("method"), dict) and body["method"].get("plugin_digest") is None:
        body["method"] = {k: v for k, v in body["method"].items() if k != "plugin_digest"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest() != data["integrity"]


def record_failure(folder: Path, protocol: Protocol, method: str, hyperparameters: dict[str, Any],
                   seed: int, overrides: list[str], error: BaseException) -> Path:
    """Record a failed run: NAME.failure (JSON: what and why) and NAME.log (the traceback).

    They sit beside the records but are not `*.json`, so no leaderboard ever reads them.
    Returns the path of the .failure file.
    """
    import traceback

    rid = run_id(protocol.hash, method, hyperparameters, seed)
    stem = Path(record_filename(protocol.name, method, seed, rid)).stem
    write_atomic(Path(folder) / f"{stem}.log", "".join(traceback.format_exception(error)))
    details = {"status": "failed", "run_id": rid, "protocol": protocol.name,
               "protocol_hash": protocol.hash, "method": method, "hyperparameters": hyperparameters,
               "seed": seed, "overrides": list(overrides), "reason": f"{type(error).__name__}: {error}"}
    path = Path(folder) / f"{stem}.failure"
    write_atomic(path, json.dumps(details, indent=1, sort_keys=True) + "\n")
    return path
