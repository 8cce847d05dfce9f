"""Run records as a pandas DataFrame: one row per record, tidy scalar columns.

For notebooks and for the leaderboard, which computes its statistics from this frame:

    import clbench
    runs = clbench.load_records(["leaderboards/paper-environments/records"])
    runs.groupby(["method", "environment_kind"])["acc"].mean()

Columns (see docs/notebooks.md): `run_id`, `protocol`, `protocol_version`, `protocol_hash`,
`setup_hash`, `setup_changes` (how the setup differs from its preset's, as `--set`
assignments; empty when it does not), `environment` (the full label with parameters), `environment_kind` (its
short label), `method`, `plugin`, `plugin_version`, `hyperparameters` (canonical JSON, for
grouping), one `hp.<name>` column per hyperparameter, `seed`, the metrics (`acc`, `bwt`,
`forgetting`, `fwt`, `learning_accuracy`, `ff_auc`, `ff_auc_slope`; fractions), `exemplars`,
timing (`wall_time_s`, `setup_time_s`, `train_s`, `curve_eval_s`, `eval_s`), `device`,
`clbench_version`, `created_at`, and `audit.<field>` columns when records carry an audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .metrics import METRIC_LABELS
from .presets import PROTOCOLS
from .protocol import setup_changes
from .records import RunRecord, canonical_json

#: The identity of a leaderboard entry: one method configuration in one environment of a setup.
ENTRY_KEYS = ["setup_hash", "method", "hyperparameters", "environment"]


def _flat(prefix: str, data: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts as dotted columns (`prefix.a.b`); lists and scalars kept as they are."""
    if not data:
        return {}
    return {f"{prefix}.{key}": value
            for key, value in pd.json_normalize(data, sep=".").iloc[0].to_dict().items()}


def _audit(record: RunRecord) -> dict[str, Any]:
    """The audit block's scalar fields (its per-phase list stays in the record); none without one."""
    audit = getattr(record, "audit", None)  # older records have no audit block
    if audit is None:
        return {}
    data = audit.model_dump(mode="json") if hasattr(audit, "model_dump") else dict(audit)
    return {key: value for key, value in _flat("audit", data).items() if not isinstance(value, list)}


_CHANGES: dict[tuple[str, int, str], str] = {}


def preset_changes(record: RunRecord) -> str:
    """How the record's setup differs from the preset it names (same name and version), as
    comma-separated `--set` assignments; empty when it does not or no such preset exists."""
    key = (record.protocol_name, int(record.protocol["version"]), record.setup_hash)
    if key not in _CHANGES:
        preset = PROTOCOLS.get(key[0])
        _CHANGES[key] = ("" if preset is None or preset.version != key[1] else
                         ", ".join(setup_changes(record.protocol, preset.model_dump(mode="json"))))
    return _CHANGES[key]


def record_row(record: RunRecord) -> dict[str, Any]:
    """One record's tidy row (scalars only; matrices and curves stay in the record)."""
    metrics = record.metrics
    hp = record.method.hyperparameters
    return {
        "run_id": record.run_id,
        "protocol": record.protocol_name,
        "protocol_version": int(record.protocol["version"]),
        "protocol_hash": record.protocol_hash,
        "setup_hash": record.setup_hash,
        "setup_changes": preset_changes(record),
        "environment": record.environment_label,
        "environment_kind": record.protocol["environment"]["kind"],
        "method": record.method.name,
        "plugin": record.method.plugin,
        "plugin_version": record.method.version,
        "hyperparameters": canonical_json(hp),
        **_flat("hp", hp),
        # default, user or tuned (records.HyperparameterSource); "unrecorded" in older records
        "hp_source": source.kind if (source := record.method.hyperparameter_source) else "unrecorded",
        "tuning_id": source.tuning_id or "" if source else "",
        "seed": record.seed,
        **{key: getattr(metrics, key) for key in METRIC_LABELS},
        "ff_auc_slope": metrics.forward_facilitation.auc_slope,
        "exemplars": record.method.stored_exemplars,
        "wall_time_s": record.wall_time_s,
        "setup_time_s": record.setup_time_s,
        "train_s": sum(t.train_s for t in record.phase_timings),
        "curve_eval_s": sum(t.curve_eval_s for t in record.phase_timings),
        "eval_s": sum(t.eval_s for t in record.phase_timings),
        "device": record.device,
        "clbench_version": record.versions.clbench,
        "created_at": record.created_at,
        **_audit(record),
    }


def records_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Records to a DataFrame, one row each, ordered by run id (so input order never matters)."""
    rows = [record_row(r) for r in sorted(records, key=lambda r: r.run_id)]
    frame = pd.DataFrame(rows)
    metric_columns = [*METRIC_LABELS, "ff_auc_slope"]
    frame[metric_columns] = frame[metric_columns].astype(float)  # undefined metrics: NaN
    return frame


def load_records(paths: Iterable[str | Path | RunRecord]) -> pd.DataFrame:
    """Record files or folders (searched for *.json) as a DataFrame; RunRecords are taken as they are.

    Every file is validated (schema, protocol hash, run id, integrity seal) and the same run
    found twice is kept once, as for `clbench leaderboard`.
    """
    return records_frame(collect_records(paths))


def collect_records(items: Iterable[str | Path | RunRecord]) -> list[RunRecord]:
    """RunRecords as given, plus every record read from the paths among `items`."""
    from .leaderboard import read_records

    items = list(items)
    given = [item for item in items if isinstance(item, RunRecord)]
    paths = [item for item in items if not isinstance(item, RunRecord)]
    return given + (read_records(paths) if paths or not given else [])
