"""How much weaker is EWC's Fisher at the predicted labels than at the true ones?

    python leaderboards/investigations/fisher_labels.py [--seeds 0 1 2] [--protocol vdv-smnist-task]

van de Ven's code estimates the Fisher information with each sample's loss at the
model's predicted label; the "empirical Fisher" (clbench's `fisher_labels=true`, and
Avalanche's choice) takes it at the true label. The two agree on every sample the model
classifies correctly. On a misclassified sample the true label's loss is large and its
gradient with it, while the predicted label's loss is small, so the few samples a model
gets wrong can carry much of the empirical Fisher and almost none of van de Ven's. With
the same λ, the predicted-label penalty is then weaker.

For each seed and task of the protocol, this script trains the protocol's network from a
fresh initialisation on that task alone (the protocol's optimizer, learning rate, batch
size and epochs over the task's training pool: 2,000 iterations on the Split MNIST
reference), then measures on the training pool, as EWC does after a task:
- the training error (misclassified samples);
- the summed per-sample Fisher (`clbench_baselines.fisher.per_sample_importances`) at
  the true and at the predicted labels, and their ratio;
- the share of the true-label Fisher that the misclassified samples carry.
It writes `fisher-labels-PROTOCOL.md` beside itself. A task-incremental task and a
domain-incremental one train the same 2-way network on one task, so both protocols give
the same page up to their digit pairs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from clbench.datasets import resolve_data_root
from clbench.models import build_model
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.records import write_atomic
from clbench.seeding import derive_seed
from clbench.tasks import load_tasks
from clbench_baselines.fisher import per_sample_importances

HERE = Path(__file__).resolve().parent


def _total(importances) -> float:
    return float(sum(p.data.sum() for p in importances.values()))


def measure(protocol, data_root: Path, seed: int) -> list[dict]:
    """One row per task: training error and the Fisher at the true and predicted labels."""
    single = apply_overrides(protocol, ["benchmark.scenario=domain"]) if protocol.benchmark.scenario == "task" \
        else protocol  # one task's head: the same 2-way network
    tasks = load_tasks(single.benchmark, data_root, seed)
    training = protocol.training
    rows = []
    for t, task in enumerate(tasks):
        torch.manual_seed(derive_seed(seed, "fisher-labels", t))
        model = build_model(single.model, single.benchmark)
        optimizer = torch.optim.Adam(model.parameters(), lr=training.lr)
        criterion = nn.CrossEntropyLoss()
        data = torch.utils.data.TensorDataset(task.train_x, task.train_y)
        generator = torch.Generator().manual_seed(derive_seed(seed, "fisher-labels-order", t))
        model.train()
        for _ in range(training.epochs):
            for x, y in torch.utils.data.DataLoader(data, batch_size=training.batch_size, shuffle=True,
                                                    generator=generator):
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            wrong = model(task.train_x).argmax(1) != task.train_y
        true = _total(per_sample_importances(model, criterion, data, "cpu", 256, labels="true"))
        predicted = _total(per_sample_importances(model, criterion, data, "cpu", 256, labels="predicted"))
        misclassified = torch.utils.data.TensorDataset(task.train_x[wrong], task.train_y[wrong])
        carried = (_total(per_sample_importances(model, criterion, misclassified, "cpu", 256, labels="true"))
                   * int(wrong.sum()) / len(data)) if wrong.any() else 0.0
        rows.append({"seed": seed, "task": t, "digits": "/".join(map(str, task.classes)),
                     "training error %": 100 * float(wrong.float().mean()),
                     "Fisher, true labels": true, "Fisher, predicted labels": predicted,
                     "true / predicted": true / predicted,
                     "share of the true-label Fisher from misclassified %": 100 * carried / true})
        print(f"seed {seed} task {t}: error {rows[-1]['training error %']:.2f}%  "
              f"true/predicted {true / predicted:.2f}", file=sys.stderr, flush=True)
    return rows


def page(name: str, frame: pd.DataFrame) -> str:
    by_seed = frame.groupby("seed").agg(**{
        "training error %": ("training error %", "mean"),
        "true / predicted, median over tasks": ("true / predicted", "median"),
        "true / predicted, smallest": ("true / predicted", "min"),
        "true / predicted, largest": ("true / predicted", "max")}).reset_index()
    by_seed["seed"] = by_seed["seed"].astype(str)
    return (f"# EWC's Fisher at the true and at the predicted labels: `{name}`\n\n"
            "Written by `fisher_labels.py` (the command and method are in its docstring): each task "
            "trained alone from a fresh initialisation as the protocol trains it, then the summed per-sample "
            "Fisher on its training pool at the true labels (clbench's and Avalanche's default) and at the "
            "predicted ones (van de Ven's). A ratio above 1 means the same λ gives a weaker penalty at "
            "the predicted labels.\n\nPer seed (the tasks' median, smallest and largest ratio):\n\n"
            + by_seed.to_markdown(index=False, floatfmt=".2f")
            + "\n\nPer task:\n\n" + frame.to_markdown(index=False, floatfmt=".3g") + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="vdv-smnist-task")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="protocol override (a quick look on a smaller protocol; writes nothing)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    protocol = apply_overrides(get_protocol(args.protocol), args.set)
    data_root = resolve_data_root(args.data_root)
    frame = pd.DataFrame([row for seed in args.seeds for row in measure(protocol, data_root, seed)])
    text = page(args.protocol, frame)
    print(text)
    if not args.set:
        write_atomic(HERE / f"fisher-labels-{args.protocol}.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
