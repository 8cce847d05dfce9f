"""Is permuted MNIST's None gap to van de Ven & Tolias 2019 the fixed training pool?

    python leaderboards/investigations/training_pool.py [--rows naive ...] [--seeds S ...]

clbench's `vdv-pmnist-domain` gives every task the paper's 5,000 iterations of 128 as
20 epochs over a fixed pool of 32,000 of MNIST's 60,000 training images (250 minibatches
per epoch). van de Ven's code draws its 5,000 minibatches from all 60,000, reshuffled at
each pass (about 10.7 passes). With the iteration budget (`training.iterations`) clbench
can train the same way: `benchmark.train_samples_per_task=60000`, `training.iterations=5000`.
Same optimizer steps, same model, optimizer, inputs and metrics; only the images per task
change (32,000 seen 20 times against 60,000 seen about 11 times).

The script runs each row both ways through clbench's own runner, one after the other on
this machine, keeps each run's record in `training-pool-records/` (a run found there is
not repeated: `--pools all` now, `--pools pool` another time) and writes
`training-pool-vdv-pmnist-domain.md` beside itself from them. Rows:
`naive` (the paper's "None", the gap that no method explains: 74.18 against 78.51) and,
on request, `ewc-vdv` and `si` (`input_scaling.method_settings`), and `cumulative`: naive
in the cumulative environment, the paper's "Offline (upper bound)", trained as van de
Ven's code trains it, for the same 5,000 iterations per task on all tasks' data so far
(`--cummulative`, train/train_task_based.py); its pool column is the reference suite's
Offline row. Each row's "committed record" is the suite's record of the row's pool
column, where the suite has one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from clbench.datasets import resolve_data_root
from clbench.leaderboard import read_records
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.records import ensure_writable_dir, write_atomic, write_record
from clbench.references import PUBLISHED
from clbench.runner import RunRequest, run
from clbench.suites import VANDEVEN_2019_HYPERPARAMETERS

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from input_scaling import committed_acc, method_settings, recorded_hyperparameters  # noqa: E402  (a sibling)

PROTOCOL = "vdv-pmnist-domain"
RECORDS = HERE / "training-pool-records"
#: column -> protocol overrides; both give every task 5,000 optimizer steps of 128
POOLS = {
    "pool": [],
    "all": ["benchmark.train_samples_per_task=60000", "training.epochs=1", "training.iterations=5000"],
}
LABELS = {"pool": "pool of 32,000", "all": "all 60,000"}  # both: 5,000 steps of 128 per task
#: row -> method, hyperparameters, protocol overrides of the row (besides the pool's)
ROWS = {
    "naive": ("naive", {}, []),
    "ewc-vdv": (*method_settings(PROTOCOL, "ewc-vdv"), []),
    "si": ("si", dict(item.split("=", 1) for item in VANDEVEN_2019_HYPERPARAMETERS[PROTOCOL]["si"]), []),
    # the suite's Offline row: the same steps per task on a growing phase (clbench.suites)
    "cumulative": ("naive", {}, ["environment.kind=cumulative", "training.epochs=1", "training.iterations=5000"]),
}


def _published(row: str) -> float:
    method, _, overrides = ROWS[row]
    kind = "cumulative" if "environment.kind=cumulative" in overrides else "sequential"
    return PUBLISHED[(PROTOCOL, method, kind)].acc


def _page(runs: pd.DataFrame) -> str:
    fixed, fresh = LABELS.values()
    for column in LABELS.values():  # a column not run this time (--pools) stays empty
        runs[column] = runs.get(column, float("nan"))
    summary = runs.groupby("row", sort=False).agg(
        seeds=("seed", "size"), committed=("committed", "mean"), fixed=(fixed, "mean"), fresh=(fresh, "mean"))
    summary["difference"] = summary.fresh - summary.fixed
    summary["difference to the committed record"] = summary.fresh - summary.committed
    summary["published"] = [_published(row) for row in summary.index]
    summary = summary.rename(columns={"committed": "committed record", "fixed": f"{fixed}, here",
                                      "fresh": f"{fresh}, here"})
    return (f"# `{PROTOCOL}`: a fixed pool of 32,000 images per task, or all 60,000\n\n"
            "ACC in % at the end of the protocol. Both columns train every task for 5,000 steps of 128 "
            "(`cumulative` too, on all the tasks' data so far), "
            "run one after the other on this machine; difference = all 60,000 - pool. The committed record "
            "(the pool, run on another day: floating point alone can move it by a few tenths) is beside "
            "them, and the difference to it is given too. Mean over the seeds, then per seed. Written by "
            "`training_pool.py` (its docstring says why).\n\n"
            + summary.reset_index().to_markdown(index=False, floatfmt=".2f") + "\n\nPer seed:\n\n"
            + runs.to_markdown(index=False, floatfmt=".2f") + "\n")


def _find(records, protocol, method: str, hp: dict, seed: int):
    """A run of this setting among `records` (records/: this page's own runs), or None."""
    wanted = recorded_hyperparameters(method, hp)
    return next((r for r in records if r.protocol["hash"] == protocol.hash and r.method.name == method
                 and r.method.hyperparameters == wanted and r.seed == seed), None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["naive"], choices=list(ROWS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pools", nargs="+", choices=list(POOLS), default=list(POOLS),
                        help="the columns to run: the pool (the committed protocol), all 60,000 images "
                             "(default both, the second first)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="protocol override (a quick look on a smaller protocol; writes nothing)")
    args = parser.parse_args(argv)
    data_root = resolve_data_root(args.data_root)
    # every run is kept as a sealed record (clbench verify re-runs it); a run already there is
    # not repeated, so the page grows one run at a time and never mixes another day's runs
    done = [] if args.set or not RECORDS.is_dir() else list(read_records([RECORDS]))
    results: dict[tuple, dict] = {}
    # the page shows every run kept so far, whichever rows and seeds this call runs
    seeds = sorted(set(args.seeds) | {r.seed for r in done})
    for pool in sorted(POOLS, key=list(POOLS)[::-1].index):  # the new column first
        overrides, column = POOLS[pool], LABELS[pool]
        for row in ROWS:
            method, hp, row_overrides = ROWS[row]
            protocol = apply_overrides(get_protocol(PROTOCOL), [*overrides, *row_overrides, *args.set])
            # the committed suite records of the row's pool column beside it
            pooled = apply_overrides(get_protocol(PROTOCOL), [*POOLS["pool"], *row_overrides])
            committed = {} if args.set else committed_acc(PROTOCOL, method, hp, seeds, pooled.hash)
            registered = get_registry().get(method)
            for seed in seeds:
                record = _find(done, protocol, method, hp, seed)
                if record is None and pool in args.pools and row in args.rows and seed in args.seeds:
                    record = run(RunRequest(protocol, registered, registered.method.parse_hyperparameters(hp),
                                            seed, data_root))
                    print(f"{row} seed {seed} {column}: ran, ACC {100 * record.metrics.acc:.2f}",
                          file=sys.stderr, flush=True)
                    if not args.set:
                        write_record(record, ensure_writable_dir(RECORDS))
                if record is None:
                    continue
                entry = results.setdefault((row, seed), {"row": row, "seed": seed, "committed": committed.get(seed)})
                entry[column] = 100 * record.metrics.acc
                entry[f"learning acc. {column}"] = 100 * record.metrics.learning_accuracy
                entry[f"steps per task, {column}"] = record.audit.phases[0].steps
                print(f"{row} seed {seed} {column}: ACC {entry[column]:.2f}", file=sys.stderr, flush=True)
    if not results:
        print("no runs kept and none asked for (--rows, --pools, --seeds)", file=sys.stderr)
        return 2
    page = _page(pd.DataFrame(list(results.values())))
    print(page)
    if not args.set:
        write_atomic(HERE / f"training-pool-{PROTOCOL}.md", page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
