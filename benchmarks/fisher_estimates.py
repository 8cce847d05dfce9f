"""Cost of EWC's three Fisher passes on one phase of real MNIST, and how far apart they are.

Times, on the reference protocols' MLPs (2x400 on Split MNIST, 2x1000 on permuted MNIST),
one pass over a phase's training images with
- Avalanche's minibatch estimate (`EWCPlugin.compute_importances`, clbench's default),
- the per-sample estimate's one-pass shortcut for linear layers (`fisher=per-sample`),
- the per-sample estimate through torch.func's vmap (what any non-linear model takes),
next to one training epoch on the same images, and prints the ratios (measured in one
run, so they hold on a noisy machine) and how much larger the per-sample importances are
than Avalanche's (the factor a paper's lambda loses on Avalanche's estimate).

    python benchmarks/fisher_estimates.py [--samples 4096] [--threads 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def _mnist(samples: int, data_root) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST

    data = MNIST(str(data_root), train=True, download=False)
    x = data.data[:samples].float().div(255).flatten(1)
    return (x - x.mean()) / x.std(), data.targets[:samples]


def _timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def measure(hidden: int, x, y, batch: int) -> dict[str, float]:
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
    from avalanche.training.plugins import EWCPlugin

    from clbench_baselines.fisher import _linear_squares, _vmap_squares

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()

    def epoch():
        model.train()
        for i in range(0, len(x), batch):
            optimizer.zero_grad()
            F.cross_entropy(model(x[i:i + batch]), y[i:i + batch]).backward()
            optimizer.step()

    for _ in range(3):  # a trained model, as at a phase's end
        epoch()
    model.eval()
    dataset = _make_taskaware_tensor_classification_dataset(x, y, targets=y, task_labels=0)  # as the harness builds it
    params = {n: p.detach() for n, p in model.named_parameters()}

    def per_sample(squares):
        totals = {n: torch.zeros_like(p) for n, p in params.items()}
        for i in range(0, len(x), batch):
            for n, s in squares(i).items():
                totals[n] += s
        return {n: t / len(x) for n, t in totals.items()}

    t_epoch, _ = _timed(epoch)
    model.eval()
    t_avalanche, avalanche = _timed(lambda: EWCPlugin(1.0).compute_importances(
        model, criterion, optimizer, dataset, "cpu", batch))
    t_linear, linear = _timed(lambda: per_sample(
        lambda i: _linear_squares(model, criterion, (x[i:i + batch],), y[i:i + batch])))
    t_vmap, vmapped = _timed(lambda: per_sample(
        lambda i: _vmap_squares(model, criterion, (x[i:i + batch],), y[i:i + batch], params)))
    total = lambda d: sum(float(v.data.sum()) for v in d.values())  # noqa: E731
    agree = max(float(((linear[n] - vmapped[n]).abs().max() / vmapped[n].abs().max().clamp_min(1e-30)))
                for n in linear)
    return {"epoch": t_epoch, "avalanche": t_avalanche, "linear": t_linear, "vmap": t_vmap,
            "ratio": total(linear) / total(avalanche), "agree": agree}


def main(argv=None) -> int:
    from clbench.datasets import resolve_data_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    x, y = _mnist(args.samples, resolve_data_root(args.data_root))
    lines = [f"EWC Fisher passes over {args.samples} MNIST training images, batch {args.batch}, "
             f"{args.threads} thread(s), torch {torch.__version__}",
             "| MLP | epoch s | Avalanche s | per-sample shortcut s | per-sample vmap s "
             "| shortcut / Avalanche | vmap / shortcut | per-sample / Avalanche importances | shortcut vs vmap (max rel. diff) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for hidden in (400, 1000):
        m = measure(hidden, x, y, args.batch)
        lines.append(f"| 2x{hidden} | {m['epoch']:.2f} | {m['avalanche']:.2f} | {m['linear']:.2f} | {m['vmap']:.2f} "
                     f"| {m['linear'] / m['avalanche']:.2f} | {m['vmap'] / m['linear']:.0f} | {m['ratio']:.0f} "
                     f"| {m['agree']:.1e} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        from clbench.records import write_atomic

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
