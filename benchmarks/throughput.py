"""Throughput of clbench's pipeline against stock Avalanche and a lean PyTorch loop.

Everything runs in one process, interleaved, so the ratios are fair on a noisy machine:

  (a) sustained float32 matmul GFLOP/s (the hardware's practical ceiling);
  (b) a lean hand-written loop: pre-permuted tensors, index-sliced minibatches;
  (c) stock Avalanche: `avalanche.benchmarks.classic.PermutedMNIST` + `Naive`;
  (d) clbench: `clbench.runner.run` (the `clbench evaluate` code path) with `naive`.

Same MLP (784-1000-1000-10), Adam lr 1e-3, batch 128, one permuted-MNIST task. Each
pipeline is measured `--repeats` times (default 3) in rotation; samples/s are medians,
and each ratio is the median of the per-repeat ratios.

    python benchmarks/throughput.py            # 60,000 samples per measurement
    python benchmarks/throughput.py --quick    # fewer samples, under a minute
    python benchmarks/throughput.py --quick --json
    python benchmarks/throughput.py --model resnet18-reduced --quick [--device cuda]  # images

`--model` other than mlp measures the image pipeline instead (Split CIFAR-100 with random
crop and flip against Avalanche's SplitCIFAR100 and a lean loop): benchmarks/throughput_images.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

HIDDEN = (1000, 1000)
BATCH = 128
EVAL_BATCH_STOCK = 128  # Avalanche's default eval_mb_size is the train batch size


def mlp() -> nn.Module:
    from clbench.models import build_model
    from clbench.protocol import ModelSpec

    return build_model(ModelSpec(hidden=HIDDEN), 784, 10)


def flops_per_training_sample(model: nn.Module) -> float:
    """Forward 2 FLOPs per weight, backward 4: 6 FLOPs per weight per sample."""
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return 6.0 * weights


def flops_per_eval_sample(model: nn.Module) -> float:
    return flops_per_training_sample(model) / 3


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------- (a) matmul
def matmul_gflops(seconds: float) -> float:
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        done += 1
    return 2 * n**3 * done / (time.perf_counter() - started) / 1e9


# ------------------------------------------------------------------------------ (b) lean
class Lean:
    """The floor: a hand-written loop over pre-permuted, pre-standardised tensors."""

    def __init__(self, data_root: Path, n_train: int):
        from clbench.datasets import load_raw

        raw = load_raw("mnist", data_root)
        train, test = raw.standardised_splits
        permutation = torch.randperm(784, generator=torch.Generator().manual_seed(0))
        self.x, self.y = train[:n_train][:, permutation].contiguous(), raw.train_y[:n_train]
        self.tx, self.ty = test[:, permutation].contiguous(), raw.test_y

    def train(self) -> float:
        model = mlp()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(self.y))
        for start in range(0, len(self.y), BATCH):
            index = order[start:start + BATCH]
            optimizer.zero_grad()
            loss_fn(model(self.x[index]), self.y[index]).backward()
            optimizer.step()
        self.model = model
        return len(self.y) / (time.perf_counter() - started)

    @torch.inference_mode()
    def evaluate(self) -> float:
        self.model.eval()
        started = time.perf_counter()
        for start in range(0, len(self.ty), 1024):
            self.model(self.tx[start:start + 1024]).argmax(1)
        return len(self.ty) / (time.perf_counter() - started)


# ----------------------------------------------------------------------------- (c) stock
class Stock:
    """Avalanche as its documentation shows it: PermutedMNIST + Naive."""

    def __init__(self, data_root: Path, n_train: int):
        from avalanche.benchmarks.classic import PermutedMNIST

        started = time.perf_counter()
        self.benchmark = PermutedMNIST(n_experiences=1, seed=0, dataset_root=str(data_root))
        self.setup_s = time.perf_counter() - started
        self.n_train = n_train

    def _strategy(self):
        from avalanche.core import SupervisedPlugin
        from avalanche.training.plugins import EvaluationPlugin
        from avalanche.training.supervised import Naive

        n_train = self.n_train

        class StopAfter(SupervisedPlugin):
            """Ends the epoch once n_train samples were seen (for --quick)."""

            seen = 0

            def after_training_iteration(self, strategy, **kwargs):
                self.seen += len(strategy.mb_y)
                if self.seen >= n_train:
                    strategy.stop_training()

        self.counter = StopAfter()
        model = mlp()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = EvaluationPlugin(loggers=[])
        return Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                     criterion=nn.CrossEntropyLoss(), train_mb_size=BATCH, train_epochs=1,
                     eval_mb_size=EVAL_BATCH_STOCK, plugins=[self.counter], evaluator=evaluator)

    def train(self) -> float:
        self.strategy = self._strategy()
        started = time.perf_counter()
        self.strategy.train(self.benchmark.train_stream[0])
        return self.counter.seen / (time.perf_counter() - started)

    def evaluate(self) -> float:
        experience = self.benchmark.test_stream[0]
        started = time.perf_counter()
        self.strategy.eval([experience])
        return len(experience.dataset) / (time.perf_counter() - started)


# --------------------------------------------------------------------------- (d) clbench
class Clbench:
    """The `clbench evaluate` code path on a one-task protocol of the same shape."""

    def __init__(self, data_root: Path, n_train: int):
        from clbench.plugins import get_registry
        from clbench.presets import get_protocol
        from clbench.protocol import apply_overrides

        self.protocol = apply_overrides(get_protocol("pmnist-10"), [
            "benchmark.n_tasks=1", f"benchmark.train_samples_per_task={n_train}",
            "benchmark.test_samples_per_task=10000", f"model.hidden={list(HIDDEN)}",
            "training.optimizer=adam", "training.lr=0.001", f"training.batch_size={BATCH}",
            "training.epochs=1", "evaluation.curve_points=1", "evaluation.batch_size=1024",
        ])
        self.naive = get_registry().get("naive")
        self.data_root = data_root

    def run(self) -> tuple[float, float, float, float]:
        """Training and evaluation samples/s, set-up seconds and run seconds."""
        from clbench.runner import RunRequest, run

        hp = self.naive.method.parse_hyperparameters({})
        record = run(RunRequest(self.protocol, self.naive, hp, 0, self.data_root))
        timing = record.phase_timings[0]  # train_s excludes the harness's curve evaluations
        test_samples = self.protocol.benchmark.test_samples_per_task
        return (record.samples_trained[0] / timing.train_s, test_samples / timing.eval_s,
                record.setup_time_s, record.wall_time_s)


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over repeats of ours[i] / theirs[i]."""
    return median([a / b for a, b in zip(ours, theirs)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples; finishes within a minute")
    parser.add_argument("--repeats", type=int, default=None, help="measurements per pipeline (median reported)")
    parser.add_argument("--data-root", default=os.environ.get("CLBENCH_DATA_ROOT", "../shared/data"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--model", default="mlp", choices=["mlp", "resnet18-reduced", "resnet18", "resnet32"],
                        help="mlp (permuted MNIST, below) or a ResNet on Split CIFAR-100 images")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (image models)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="clbench's training.precision (image models)")
    args = parser.parse_args(argv)
    if args.model != "mlp":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import throughput_images

        return throughput_images.main(args)
    repeats = args.repeats or 3
    n_train = 12800 if args.quick else 60000
    data_root = Path(args.data_root)

    total_started = time.perf_counter()
    gflops = matmul_gflops(1.0 if args.quick else 3.0)
    lean, stock, ours = Lean(data_root, n_train), Stock(data_root, n_train), Clbench(data_root, n_train)
    ours.run()  # warm-up: imports, data cache
    samples = {"lean": [], "stock": [], "clbench": []}
    evals = {"lean": [], "stock": [], "clbench": []}
    setups, runs = [], []
    def measure_lean():
        samples["lean"].append(lean.train())
        evals["lean"].append(lean.evaluate())

    def measure_stock():
        samples["stock"].append(stock.train())
        evals["stock"].append(stock.evaluate())

    def measure_clbench():
        train_sps, eval_sps, setup_s, run_s = ours.run()
        samples["clbench"].append(train_sps)
        evals["clbench"].append(eval_sps)
        setups.append(setup_s)
        runs.append(run_s)

    order = [measure_lean, measure_stock, measure_clbench]
    for repeat in range(repeats):  # interleaved, the order rotated: drift hits all three alike
        for measure in order[repeat % 3:] + order[:repeat % 3]:
            measure()

    train = {k: median(v) for k, v in samples.items()}
    evaluation = {k: median(v) for k, v in evals.items()}
    flops = flops_per_training_sample(mlp())
    clbench_gflops = train["clbench"] * flops / 1e9
    result = {
        "clbench_sps": train["clbench"],
        "stock_avalanche_sps": train["stock"],
        "lean_sps": train["lean"],
        "matmul_gflops": gflops,
        "clbench_gflops": clbench_gflops,
        # each ratio is the median of the per-repeat ratios: measurements of one repeat
        # are seconds apart, so slow drift of the machine's speed cancels out
        "ratio_vs_stock": paired_ratio(samples["clbench"], samples["stock"]),
        "ratio_vs_lean": paired_ratio(samples["clbench"], samples["lean"]),
        "clbench_eval_sps": evaluation["clbench"],
        "stock_avalanche_eval_sps": evaluation["stock"],
        "lean_eval_sps": evaluation["lean"],
        "eval_ratio_vs_stock": paired_ratio(evals["clbench"], evals["stock"]),
        "clbench_fraction_of_matmul": clbench_gflops / gflops,
        "stock_setup_s": stock.setup_s,
        "peak_rss_mb": peak_rss_mb(),
        "samples_per_measurement": n_train,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "wall_s": time.perf_counter() - total_started,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"matmul (float32, {torch.get_num_threads()} threads): {gflops:.0f} GFLOP/s")
    print(f"{'pipeline':<22}{'train samples/s':>16}{'eval samples/s':>16}")
    for key, label in (("stock", "stock Avalanche"), ("lean", "lean PyTorch loop"), ("clbench", "clbench")):
        print(f"{label:<22}{train[key]:>16,.0f}{evaluation[key]:>16,.0f}")
    print(f"clbench / stock: train {result['ratio_vs_stock']:.2f}x, eval {result['eval_ratio_vs_stock']:.2f}x")
    print(f"clbench / lean:  train {result['ratio_vs_lean']:.2f}x")
    print(f"clbench training: {clbench_gflops:.0f} GFLOP/s = {result['clbench_fraction_of_matmul']:.0%} of matmul")
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB; medians of {repeats} repeats; {result['wall_s']:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
