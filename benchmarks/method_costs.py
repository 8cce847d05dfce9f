"""Per-phase training cost of every installed method on a protocol (default: pmnist-10).

Runs each method once (seed 0) through the normal runner, writes its record to --out
(skipping methods whose record is already there, so an interrupted run resumes), and
prints each phase's training seconds (the harness's own measuring excluded) together
with the growth from the first rehearsal phase to the last. Class-incremental-only
methods run on --class-protocol instead.

    python benchmarks/method_costs.py --out benchmarks/results/method-costs
    python benchmarks/method_costs.py --methods naive ewc --set environment.kind=sequential
    python benchmarks/method_costs.py --methods ewc --hp penalty=per-task --out ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from clbench.datasets import resolve_data_root
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides, parse_assignment
from clbench.records import ensure_writable_dir, read_record, record_filename, write_record
from clbench.runner import RunRequest, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="pmnist-10")
    parser.add_argument("--class-protocol", default="smnist-5")
    parser.add_argument("--methods", nargs="*", help="default: every installed method")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--hp", dest="hyperparameters", action="append", default=[])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fast-path", dest="fast_path", action="store_false")
    parser.add_argument("--data-root", default=os.environ.get("CLBENCH_DATA_ROOT"))
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    registry = get_registry()
    out = ensure_writable_dir(Path(args.out))
    names = args.methods or sorted(registry.methods)
    records = []
    for name in names:
        registered = registry.get(name)
        base = args.protocol if "domain" in registered.method.scenarios else args.class_protocol
        protocol = apply_overrides(get_protocol(base), args.overrides)
        hp = registered.method.parse_hyperparameters(
            dict(parse_assignment(text, "--hp") for text in args.hyperparameters))
        request = RunRequest(protocol, registered, hp, args.seed, resolve_data_root(args.data_root),
                             overrides=args.overrides, fast_path=args.fast_path)
        path = out / record_filename(protocol.name, name, args.seed, request.run_id)
        if path.exists():
            records.append(read_record(path))
            continue
        started = time.perf_counter()
        record = run(request)
        write_record(record, out)
        records.append(record)
        print(f"{name}: ACC {record.metrics.acc:.4f} in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)

    print("per-phase training seconds (harness evaluation excluded), seed", args.seed)
    header = f"{'method':<12}{'protocol':<12}{'ACC':>7}{'total s':>9}  " + " ".join(
        f"{'p' + str(p):>6}" for p in range(len(records[0].phase_timings))) + "   last/p1"
    print(header)
    for record in records:
        train = [t.train_s for t in record.phase_timings]
        growth = train[-1] / train[1] if len(train) > 2 and train[1] > 0 else float("nan")
        print(f"{record.method.name:<12}{record.protocol_name:<12}{record.metrics.acc:>7.4f}"
              f"{record.wall_time_s:>9.1f}  " + " ".join(f"{t:>6.1f}" for t in train)
              + f"   {growth:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
