"""Are clbench's gaps to van de Ven & Tolias 2019 the input scaling?

    python leaderboards/investigations/input_scaling.py [--protocols P ...] [--seeds S ...]

clbench standardises MNIST by default (pixel / 255, minus 0.1307, over 0.3081); van de Ven's code
feeds the pixels scaled to [0, 1] (torchvision's `ToTensor`, no normalisation; for
permuted MNIST padded to 32 x 32). In his inputs a background pixel is exactly 0, so a
first-layer weight whose pixel is background in the current task gets no gradient;
standardised, the background is -0.42 and every weight moves on every task, which could
add interference between tasks. (The padding itself cannot matter to an MLP beyond the
initial weights' scale: a pixel that is always 0 adds nothing to any activation and its
weights get no gradient.)

This script runs rows of the reference suites through clbench's own runner (same
protocol, model, optimizer, budget and metrics as the committed records) twice on this
machine, on standardised MNIST and on MNIST scaled to [0, 1] (the protocol field
`benchmark.inputs`: `standardised`, `unit-interval`), and writes what it finds
beside itself, one page per protocol: `input-scaling-PROTOCOL.md`.
Rows: `naive` (the paper's "None"), `ewc-vdv` (EWC with van de Ven's estimate and
penalty, `clbench.suites.vandeven_penalty`), `lwf` and `icarl` (2,000 images) with
clbench's defaults.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import pandas as pd

from clbench.datasets import resolve_data_root
from clbench.leaderboard import read_records
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.records import write_atomic
from clbench.references import PUBLISHED
from clbench.runner import RunRequest, run
from clbench.suites import VANDEVEN_2019_HYPERPARAMETERS, vandeven_penalty

HERE = Path(__file__).resolve().parent
#: protocol -> (rows, default seeds): permuted MNIST runs take 10-20 minutes here, Split MNIST one
ROWS = {
    "vdv-pmnist-domain": (("naive", "ewc-vdv"), (0,)),
    "vdv-smnist-domain": (("naive", "ewc-vdv", "lwf"), (0, 1, 2)),
    "vdv-smnist-class": (("naive", "lwf", "icarl"), (0, 1, 2)),
}


def method_settings(protocol: str, row: str) -> tuple[str, dict]:
    """Method name and hyperparameters of a row."""
    if row == "ewc-vdv":
        items = vandeven_penalty("ewc", VANDEVEN_2019_HYPERPARAMETERS[protocol]["ewc"])
        return "ewc", dict(item.split("=", 1) for item in items)
    return row, {"memory_size": "2000"} if row == "icarl" else {}


#: The protocol field that says what the model sees of each pixel (clbench.protocol)
SCALINGS = {"standardised": "benchmark.inputs=standardised", "[0, 1]": "benchmark.inputs=unit-interval"}


@functools.cache
def _committed_records(protocol: str) -> tuple:
    """A reference suite's committed records, read once however many rows ask."""
    return tuple(read_records([HERE.parent / f"reference-{protocol}" / "records"]))


def recorded_hyperparameters(method: str, hp: dict) -> dict:
    """`hp` (command-line strings) as a record of `method` stores them: every field, parsed."""
    return get_registry().get(method).method.parse_hyperparameters(hp).model_dump(mode="json")


def committed_acc(protocol: str, method: str, hp: dict, seeds, protocol_hash: str | None = None) -> dict[int, float]:
    """ACC (%) of the committed records of this setting, by seed: runs of the preset itself,
    or of the protocol whose hash is `protocol_hash` (the preset with --set overrides)."""
    wanted = recorded_hyperparameters(method, hp)
    protocol_hash = protocol_hash or get_protocol(protocol).hash
    return {r.seed: 100 * r.metrics.acc for r in _committed_records(protocol)
            if r.method.name == method and r.method.hyperparameters == wanted and r.seed in seeds
            and r.protocol["hash"] == protocol_hash}


def _tables(protocol: str, runs: pd.DataFrame) -> str:
    """One protocol's page: the mean over seeds per row, then every seed."""
    summary = runs.groupby("row", sort=False).agg(
        seeds=("seed", "size"), committed=("committed", "mean"), standardised=("standardised", "mean"),
        unit=("[0, 1]", "mean"))
    summary["difference"] = summary.unit - summary.standardised
    summary["published"] = [PUBLISHED[(protocol, method_settings(protocol, row)[0], "sequential")].acc
                            for row in summary.index]
    summary = summary.rename(columns={"committed": "committed record", "standardised": "standardised, here",
                                      "unit": "[0, 1] inputs, here"})
    ewc = ", ".join(f"{k}={v}" for k, v in method_settings(protocol, "ewc-vdv")[1].items())
    return (f"# `{protocol}` with van de Ven's input scaling\n\n"
            "ACC in % at the end of the protocol: the same runs on clbench's standardised inputs and on "
            "pixels scaled to [0, 1], both run here, one after the other (the committed record beside them "
            "for reference; a record from another machine can differ by floating point alone); "
            "difference = [0, 1] - standardised; mean over the seeds, then per seed"
            + (f". `ewc-vdv`: {ewc}" if "ewc-vdv" in summary.index else "")
            + ". Written by `input_scaling.py` (its docstring says why).\n\n"
            + summary.reset_index().to_markdown(index=False, floatfmt=".2f") + "\n\nPer seed:\n\n"
            + runs.drop(columns="protocol").to_markdown(index=False, floatfmt=".2f") + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--rows", nargs="+", choices=sorted({r for rows, _ in ROWS.values() for r in rows}),
                        help="only these rows (default: each protocol's)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: 0 on permuted MNIST, 0 1 2 on Split MNIST")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="protocol override (a quick look on a smaller protocol; writes nothing)")
    args = parser.parse_args(argv)
    data_root = resolve_data_root(args.data_root)
    plans = []
    for name in args.protocols:
        rows, seeds = ROWS[name]
        for row in (r for r in rows if not args.rows or r in args.rows):
            method, hp = method_settings(name, row)
            seeds_here = tuple(args.seeds or seeds)
            # the committed records are of the full protocol: beside a smaller one they would mislead
            committed = {} if args.set else committed_acc(name, method, hp, seeds_here)
            plans.append((name, row, method, hp, seeds_here, committed))
    def run_all(column: str) -> None:
        for name, row, method, hp, seeds, committed in plans:
            protocol = apply_overrides(get_protocol(name), [*args.set, SCALINGS[column]])
            registered = get_registry().get(method)
            for seed in seeds:
                record = run(RunRequest(protocol, registered, registered.method.parse_hyperparameters(hp), seed,
                                        data_root))
                entry = results.setdefault((name, row, seed), {
                    "protocol": name, "row": row, "seed": seed, "committed": committed.get(seed)})
                entry[column] = 100 * record.metrics.acc
                entry[f"learning acc. {column}"] = 100 * record.metrics.learning_accuracy
                print(f"{name} {row} seed {seed} {column}: ACC {entry[column]:.2f}", file=sys.stderr, flush=True)

    # both scalings run here, one after the other: a committed record may come from another
    # machine, whose floating point alone can move a number by a tenth of a point
    results: dict[tuple, dict] = {}
    for column in SCALINGS:
        run_all(column)
    results = list(results.values())
    frame = pd.DataFrame(results)
    for name, runs in frame.groupby("protocol", sort=False):
        tables = _tables(name, runs)
        print(tables)
        if not args.set:
            write_atomic(HERE / f"input-scaling-{name}.md", tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
