"""Every installed method through the run audit on one protocol (default pmnist-10), one seed.

    python benchmarks/audit_baselines.py --protocol pmnist-10 [--methods naive ewc ...]

Prints one line per method: passed (with the largest share of each budget used and the
most training samples retained, against the declaration) or the audit failure that
stopped it. Methods run one after another in this process, cheapest first; no record is
written.
"""

from __future__ import annotations

import argparse
import time

from clbench.datasets import resolve_data_root
from clbench.errors import AuditFailure
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.runner import RunRequest, run

#: Roughly cheapest first, so a run cut short still covers the most methods.
ORDER = ["naive", "l2-anchor", "ewc", "online-ewc", "si", "mas", "lwf", "replay", "der", "er-ace",
         "gdumb", "icarl", "agem", "gem"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="pmnist-10")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--methods", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root")
    args = parser.parse_args()
    protocol = apply_overrides(get_protocol(args.protocol), args.overrides)
    registry = get_registry()
    names = args.methods or sorted(registry.methods, key=lambda n: (ORDER.index(n) if n in ORDER else 99, n))
    for name in names:
        registered = registry.get(name)
        if protocol.benchmark.scenario not in registered.method.scenarios:
            continue
        started = time.perf_counter()
        try:
            record = run(RunRequest(protocol, registered, registered.method.hyperparameters(), args.seed,
                                    resolve_data_root(args.data_root)))
        except AuditFailure as exc:
            print(f"{name:11s} FAILED {type(exc).__name__}: {exc}", flush=True)
            continue
        audit = record.audit
        steps = max(p.steps / p.step_limit for p in audit.phases)
        forwards = max(p.forward_samples / p.forward_limit for p in audit.phases)
        print(f"{name:11s} passed  ACC {record.metrics.acc * 100:5.2f}  steps <= {steps:.0%} of budget, "
              f"forward samples <= {forwards:.0%}, retained <= {audit.stored_samples} "
              f"(declared {audit.declared_exemplars})  {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
