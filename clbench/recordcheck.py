"""Consistency checks every record passes when it is read (called by RunRecord's validator).

The schema already refuses non-finite numbers and values out of range; these checks tie
the numbers together: the environment matrix is the protocol's for the seed, every
metric is recomputed from the accuracy matrix and the learning curves, per-phase lists
have one entry per phase, curves end where the phase's training ended, and an audit
block's limits are the protocol's (clbench.budgets) with every count within them. A
record that was edited and resealed by hand still has to pass all of this; one with
plausible but invented numbers does not, which is what `clbench verify` is for.
"""

from __future__ import annotations

import math
from typing import Any

from .budgets import RULES_VERSION, forward_limit, step_limit, stored_limit
from .metrics import compute_metrics

#: Stored and recomputed metrics may differ by this much (float noise, JSON round trips).
METRIC_TOLERANCE = 1e-9


def check_record(record, protocol) -> None:
    """Raise ValueError with a one-line reason if `record` is inconsistent."""
    T = protocol.benchmark.n_tasks
    for name in ("samples_trained", "phase_times_s", "phase_timings"):
        if len(getattr(record, name)) != T:
            raise ValueError(f"{name} needs {T} entries")
    _finite(record.method.hyperparameters, "method.hyperparameters")
    if record.environment_matrix != protocol.env_matrix(record.seed):
        raise ValueError("environment_matrix is not the protocol's for this seed")
    for index, curve in enumerate(record.learning_curves):
        where = f"learning_curves.{index}"
        if curve.phase != index:
            raise ValueError(f"{where}.phase is {curve.phase}, expected {index}")
        if not curve.samples or len(curve.samples) != len(curve.accuracy):
            raise ValueError(f"{where} needs as many accuracies as sample counts (at least one)")
        if any(b < a for a, b in zip(curve.samples, curve.samples[1:])):
            raise ValueError(f"{where}.samples must not decrease")
        if curve.samples[-1] != record.samples_trained[index]:
            raise ValueError(f"{where} ends at {curve.samples[-1]} samples, but samples_trained "
                             f"says {record.samples_trained[index]}")
    _check_metrics(record, protocol)
    if record.audit is not None:
        _check_audit(record, protocol)


def _finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} holds a non-finite number ({value})")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _finite(item, f"{where}.{index}")


def _check_metrics(record, protocol) -> None:
    curves = [curve.model_dump() for curve in record.learning_curves]
    expected = compute_metrics(record.accuracy_matrix, record.untrained_accuracy, curves,
                               protocol.evaluation.facilitation_threshold)
    differing = _differences(record.metrics.model_dump(), expected, "metrics")
    if differing:
        where, stored, recomputed = differing[0]
        raise ValueError(f"{where} is {stored}, but the accuracy matrix and learning curves give "
                         f"{recomputed}")


def _differences(stored: Any, expected: Any, where: str) -> list[tuple[str, Any, Any]]:
    if isinstance(expected, dict):
        return [d for key in expected for d in _differences(stored.get(key), expected[key], f"{where}.{key}")]
    if isinstance(expected, list):
        if not isinstance(stored, list) or len(stored) != len(expected):
            return [(where, stored, expected)]
        return [d for i, (a, b) in enumerate(zip(stored, expected)) for d in _differences(a, b, f"{where}.{i}")]
    if expected is None or stored is None or isinstance(expected, int) and not isinstance(expected, bool) \
            and isinstance(stored, int):
        return [] if stored == expected else [(where, stored, expected)]
    if abs(stored - expected) > METRIC_TOLERANCE:
        return [(where, stored, expected)]
    return []


def _phase_limits(protocol, index: int, n: int, memory: int) -> dict[str, int]:
    """What the protocol fixes of phase `index`'s audit entry, for a phase of `n` samples."""
    t = protocol.training
    return {"phase": index, "phase_samples": n,
            "step_limit": step_limit(t.epochs, t.batch_size, n, memory, t.iterations),
            "forward_limit": forward_limit(t.epochs, t.batch_size, n, memory, t.iterations),
            "stored_limit": stored_limit(memory)}


def _check_audit(record, protocol) -> None:
    audit = record.audit
    if audit.rules_version != RULES_VERSION:
        raise ValueError(f"audit.rules_version {audit.rules_version} is not {RULES_VERSION}")
    T = protocol.benchmark.n_tasks
    if len(audit.phases) != T:
        raise ValueError(f"audit.phases needs {T} entries")
    memory = record.method.stored_exemplars
    if audit.declared_exemplars != memory:
        raise ValueError(f"audit.declared_exemplars {audit.declared_exemplars} is not the method's "
                         f"stored_exemplars {memory}")
    for index, phase in enumerate(audit.phases):
        where = f"audit.phases.{index}"
        expected = _phase_limits(protocol, index, sum(record.environment_matrix[index]), memory)
        for name, value in expected.items():
            if getattr(phase, name) != value:
                raise ValueError(f"{where}.{name} is {getattr(phase, name)}, the protocol gives {value}")
        for count, limit in (("steps", "step_limit"), ("forward_samples", "forward_limit"),
                             ("stored_samples", "stored_limit")):
            if getattr(phase, count) > getattr(phase, limit):
                raise ValueError(f"{where}.{count} {getattr(phase, count)} exceeds its "
                                 f"{limit} {getattr(phase, limit)}")
    totals = {"stored_samples": max(p.stored_samples for p in audit.phases),
              "steps": sum(p.steps for p in audit.phases),
              "forward_samples": sum(p.forward_samples for p in audit.phases)}
    for name, value in totals.items():
        if getattr(audit, name) != value:
            raise ValueError(f"audit.{name} is {getattr(audit, name)}, its phases give {value}")


def check_checkpoint(payload: dict, protocol, seed: int, memory: int) -> None:
    """Raise ValueError if a checkpoint's measurements are out of range or inconsistent.

    The same rules as a record's, applied to the phases a checkpoint has finished, so an
    edited checkpoint cannot feed impossible numbers into the resumed run's record.
    """
    T = protocol.benchmark.n_tasks
    done = payload.get("phases_done")
    if not _is_int(done) or not 1 <= done < T:
        raise ValueError(f"phases_done {done!r} is not between 1 and {T - 1}")
    progress = payload.get("progress")
    if not isinstance(progress, dict):
        raise ValueError("progress is missing")
    matrix = progress.get("accuracy_matrix")
    _list_of(matrix, done, "accuracy_matrix")
    for row in matrix:
        _accuracies(row, T, "accuracy_matrix")
    _accuracies(payload.get("untrained"), T, "untrained")
    trained = progress.get("samples_trained")
    _list_of(trained, done, "samples_trained")
    if not all(_is_int(n) and n >= 0 for n in trained):
        raise ValueError("samples_trained holds a negative or non-integer count")
    curves = progress.get("curves")
    _list_of(curves, done, "curves")
    for index, curve in enumerate(curves):
        if not isinstance(curve, dict) or curve.get("phase") != index:
            raise ValueError(f"curves[{index}] is not phase {index}'s curve")
        samples, accuracy = curve.get("samples"), curve.get("accuracy")
        _list_of(samples, len(accuracy) if isinstance(accuracy, list) else -1, f"curves[{index}].samples")
        _accuracies(accuracy, len(samples), f"curves[{index}].accuracy")
        if not samples or any(not _is_int(n) or n < 0 for n in samples) \
                or any(b < a for a, b in zip(samples, samples[1:])) or samples[-1] != trained[index]:
            raise ValueError(f"curves[{index}].samples are not a rising count ending at samples_trained")
    for name in ("phase_times", "timings"):
        _list_of(progress.get(name), done, name)
    seconds = [payload.get("setup_time_s"), payload.get("elapsed_s"), *progress["phase_times"]]
    seconds += [value for timing in progress["timings"] if isinstance(timing, dict) for value in timing.values()]
    if any(not _is_number(s) or s < 0 for s in seconds) or not all(
            isinstance(t, dict) and len(t) == 3 for t in progress["timings"]):
        raise ValueError("a time is negative, non-finite or missing")
    seen = progress.get("seen")
    if not isinstance(seen, list) or any(not _is_int(c) or not 0 <= c < protocol.benchmark.n_classes
                                         for c in seen):
        raise ValueError("seen classes are not classes of this benchmark")
    _check_audit_state(payload.get("audit"), protocol, seed, memory, done)


def _check_audit_state(state, protocol, seed: int, memory: int, done: int) -> None:
    if not isinstance(state, dict):
        raise ValueError("the audit state is missing")
    phases = state.get("phases")
    _list_of(phases, done, "audit phases")
    matrix = protocol.env_matrix(seed)
    for index, phase in enumerate(phases):
        limits = _phase_limits(protocol, index, sum(matrix[index]), memory)
        if not isinstance(phase, dict) or any(phase.get(k) != v for k, v in limits.items()) \
                or phase.get("verdict") != "pass":
            raise ValueError(f"audit phase {index} does not match the protocol's limits")
        for count, limit in (("steps", "step_limit"), ("forward_samples", "forward_limit"),
                             ("stored_samples", "stored_limit"), ("update_checks", None)):
            value = phase.get(count)
            if not _is_int(value) or value < 0 or (limit and value > phase[limit]):
                raise ValueError(f"audit phase {index}: {count} {value!r} is out of range")
    retained = state.get("retained")
    expected = state.get("expected")
    if not _tensor(retained, 1) or len(retained) > stored_limit(memory) or not _tensor(expected, 1):
        raise ValueError("the audit's retained samples or parameter fingerprint are malformed")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _tensor(value, dims: int) -> bool:
    return type(value).__name__ == "Tensor" and value.dim() == dims


def _list_of(value, length: int, name: str) -> None:
    if not isinstance(value, list) or len(value) != length:
        raise ValueError(f"{name} does not have {length} entries")


def _accuracies(values, length: int, name: str) -> None:
    _list_of(values, length, name)
    if any(not _is_number(v) or not 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{name} holds a value that is not an accuracy in [0, 1]")
