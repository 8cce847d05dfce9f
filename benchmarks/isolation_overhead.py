"""What process isolation costs a run: seconds spent moving data and models between processes.

The harness process reports how long each request's own work took (loading data, cutting
phases, evaluating): work an in-process harness did as well. The rest of each round trip
(encoding the model's state_dict, the phase tensors crossing the socket, waiting for the
process) is the isolation's cost, printed against the run's wall time.

    python benchmarks/isolation_overhead.py --protocol pmnist-10 --method naive
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="pmnist-10")
    parser.add_argument("--method", default="naive")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from clbench import isolation
    from clbench.datasets import resolve_data_root
    from clbench.plugins import get_registry
    from clbench.presets import get_protocol
    from clbench.protocol import apply_overrides
    from clbench.runner import RunRequest, run

    protocol = apply_overrides(get_protocol(args.protocol), args.overrides)
    method = get_registry().get(args.method)
    launched = time.perf_counter()
    isolation.start_harness(wait=True)  # once per process; the CLI overlaps it with imports
    startup = time.perf_counter() - launched
    client = isolation.harness()
    started = time.perf_counter()
    before = client.overhead_s
    record = run(RunRequest(protocol, method, method.method.hyperparameters(), args.seed,
                            Path(resolve_data_root(args.data_root))))
    wall = time.perf_counter() - started
    overhead = client.overhead_s - before
    result = {"protocol": protocol.name, "method": method.name, "wall_s": round(wall, 2),
              "isolation_overhead_s": round(overhead, 3),
              "harness_startup_s": round(startup, 2),
              "overhead_fraction": round(overhead / wall, 4), "acc": record.metrics.acc}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{protocol.name} / {method.name}: run {wall:.1f} s, isolation {overhead:.2f} s "
              f"({100 * overhead / wall:.1f}% of the run); harness process start-up {startup:.1f} s "
              "(once per process, overlapped with imports by the CLI)")


if __name__ == "__main__":
    main()
