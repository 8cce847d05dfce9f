"""Records as clbench wrote them before audits and hyperparameter sources existed.

The committed leaderboards were re-run so that every record carries both; tests of how
older records are read and tabulated make such a record from a current one.
"""

from __future__ import annotations

import json
from pathlib import Path

from clbench.records import RunRecord, integrity_hash


def unaudited_copy(path: Path, folder: Path) -> Path:
    """A copy of the record at `path` in `folder`, without the audit block and the
    hyperparameter source, sealed as such a record was."""
    data = json.loads(Path(path).read_text())
    data.pop("audit", None)
    data["method"].pop("hyperparameter_source", None)
    data["integrity"] = integrity_hash(RunRecord.model_validate({**data, "integrity": ""}))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(path).name
    target.write_text(json.dumps(data, indent=2))
    return target
