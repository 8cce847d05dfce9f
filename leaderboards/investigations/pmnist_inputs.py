"""Is clbench's permuted-MNIST gap to van de Ven & Tolias 2019 the input scaling?

    python leaderboards/investigations/pmnist_inputs.py [--seeds 0] [--methods naive ewc-vdv]

clbench standardises MNIST (pixel / 255, minus 0.1307, over 0.3081); van de Ven's code
feeds the pixels scaled to [0, 1] (torchvision's `ToTensor`, no normalisation), padded to
32 x 32. In his inputs a background pixel is exactly 0, so a first-layer weight whose pixel
is background in the current permutation gets no gradient; standardised, the background
is -0.42 and every weight moves on every task, which could add interference between
permutations. (The padding itself cannot matter to an MLP beyond the initial weights'
scale: a pixel that is always 0 adds nothing to any activation and its weights get no
gradient.)

This script runs the `vdv-pmnist-domain` protocol through clbench's own runner
(in-process, same model, optimizer, budget and metrics as the committed records) with
MNIST scaled to [0, 1] instead, and writes `pmnist-inputs.md` beside itself, next to the
committed standardised records of the same method, hyperparameters and seeds (read, not
re-run). Methods: `naive` (van de Ven's "None") and `ewc-vdv`, EWC with van de Ven's
estimate and penalty (`clbench.suites.vandeven_penalty`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from clbench import datasets
from clbench.datasets import resolve_data_root
from clbench.leaderboard import read_records
from clbench.plugins import get_registry
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.records import write_atomic
from clbench.runner import RunRequest, run
from clbench.suites import VANDEVEN_2019_HYPERPARAMETERS, vandeven_penalty

HERE = Path(__file__).resolve().parent
PROTOCOL = "vdv-pmnist-domain"
PUBLISHED = {"naive": 78.51, "ewc-vdv": 94.31}


def method_settings(name: str) -> tuple[str, dict]:
    """Method name and hyperparameters of a row."""
    if name == "naive":
        return "naive", {}
    if name == "ewc-vdv":
        items = vandeven_penalty("ewc", VANDEVEN_2019_HYPERPARAMETERS[PROTOCOL]["ewc"])
        return "ewc", dict(item.split("=", 1) for item in items)
    raise SystemExit(f"unknown method row {name!r} (naive, ewc-vdv)")


def unit_interval_inputs() -> None:
    """From now on, this process's MNIST is pixel / 255, as van de Ven's `ToTensor`."""
    datasets.NORMALISATION["mnist"] = ((0.0,), (1.0,))


def committed_acc(method: str, hp: dict, seeds) -> dict[int, float]:
    """ACC (%) of the committed standardised records of this setting, by seed."""
    registered = get_registry().get(method)
    wanted = registered.method.parse_hyperparameters(hp).model_dump(mode="json")
    records = read_records([HERE.parent / f"reference-{PROTOCOL}" / "records"])
    return {r.seed: 100 * r.metrics.acc for r in records
            if r.method.name == method and r.method.hyperparameters == wanted and r.seed in seeds
            and r.protocol["environment"]["kind"] == "sequential"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["naive", "ewc-vdv"])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="protocol override (a quick look on a smaller protocol; writes nothing)")
    args = parser.parse_args(argv)
    protocol = apply_overrides(get_protocol(PROTOCOL), args.set)
    data_root = resolve_data_root(args.data_root)
    settings = {name: method_settings(name) for name in args.methods}
    # the committed records are of the full protocol: beside a smaller one they would mislead
    standardised = {name: {} if args.set else committed_acc(*settings[name], args.seeds) for name in args.methods}
    unit_interval_inputs()
    rows = []
    for name, (method, hp) in settings.items():
        registered = get_registry().get(method)
        for seed in args.seeds:
            record = run(RunRequest(protocol, registered, registered.method.parse_hyperparameters(hp), seed, data_root))
            rows.append({"method": name, "seed": seed, "standardised (committed)": standardised[name].get(seed),
                         "[0, 1] inputs": 100 * record.metrics.acc,
                         "learning acc., [0, 1]": 100 * record.metrics.learning_accuracy})
            print(f"{name}, seed {seed}: ACC {rows[-1]['[0, 1] inputs']:.2f}", file=sys.stderr)
    frame = pd.DataFrame(rows)
    frame["published"] = frame.method.map(PUBLISHED)
    table = frame.to_markdown(index=False, floatfmt=".2f")
    print(table)
    if args.set:
        return 0
    hp_note = ", ".join(f"{k}={v}" for k, v in settings.get("ewc-vdv", ("", {}))[1].items())
    write_atomic(HERE / "pmnist-inputs.md",
                 "# Permuted MNIST with van de Ven's input scaling\n\n"
                 f"Protocol `{PROTOCOL}`; ACC in % after the 10 tasks, clbench's standardised inputs "
                 "(the committed records) beside the same runs on pixels scaled to [0, 1]. "
                 f"`ewc-vdv`: {hp_note}. Written by `pmnist_inputs.py` (its docstring says why).\n\n"
                 + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
