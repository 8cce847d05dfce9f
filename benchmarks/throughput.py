"""Throughput of clbench's pipeline against stock Avalanche and a lean PyTorch loop.

Everything runs in one process, interleaved, so the ratios are fair on a noisy machine:

  (a) sustained float32 matmul GFLOP/s (the hardware's practical ceiling);
  (b) a lean hand-written loop: pre-permuted tensors on the device, index-sliced
      minibatches, `torch.optim.Adam` as torch builds it by default, and (b') the same loop
      with `Adam(fused=True)`;
  (c) stock Avalanche: `avalanche.benchmarks.classic.PermutedMNIST` + `Naive`;
  (d) clbench: `clbench.runner.run` (the `clbench evaluate` code path) with `naive`, and
      (d') the same with `training.optimizer_kernel=fused`.

Two configurations, one permuted-MNIST task each (`--config`, default both):
  mlp-b128     MLP 784-1000-1000-10, Adam lr 1e-3, batch 128 (the `pmnist-10` shape);
  paper-b1024  `pmnist-paper`'s MLP (3x1000, batch norm, dropout 0.5), Adam, batch 1024.
Each pipeline is measured `--repeats` times (default 3) in rotation; samples/s are
medians, and each ratio is the median of the per-repeat ratios. On CUDA every clock is
read after `torch.cuda.synchronize()`.

    python benchmarks/throughput.py            # 60,000 samples per measurement
    python benchmarks/throughput.py --quick    # fewer samples, under a minute on 2 CPU cores
    python benchmarks/throughput.py --quick --json [--device cuda]
    python benchmarks/throughput.py --model resnet18-reduced --quick [--device cuda]  # images

The JSON's top-level keys are the first configuration's (`ratio_vs_stock`, `ratio_vs_lean`,
`ratio_vs_lean_fused`, ...); `configs` holds every configuration's.

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
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class Config:
    hidden: tuple[int, ...]
    batch_norm: bool
    dropout: float
    batch: int
    #: samples per measurement: full, --quick
    samples: tuple[int, int]


CONFIGS = {
    "mlp-b128": Config((1000, 1000), False, 0.0, 128, (60000, 6400)),
    "paper-b1024": Config((1000, 1000, 1000), True, 0.5, 1024, (60000, 10240)),
}
EVAL_BATCH = 1024


def mlp(config: Config) -> nn.Module:
    from clbench.models import build_model
    from clbench.protocol import ModelSpec

    spec = ModelSpec(hidden=config.hidden, batch_norm=config.batch_norm, dropout=config.dropout)
    return build_model(spec, 784, 10)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    """The floor: a hand-written loop over pre-permuted, pre-standardised tensors on the device."""

    def __init__(self, data_root: Path, n_train: int, config: Config, device: torch.device):
        from clbench.datasets import load_raw

        raw = load_raw("mnist", data_root)
        train, test = raw.standardised_splits
        permutation = torch.randperm(784, generator=torch.Generator().manual_seed(0))
        self.x = train[:n_train][:, permutation].contiguous().to(device)
        self.y = raw.train_y[:n_train].to(device)
        self.tx, self.ty = test[:, permutation].contiguous().to(device), raw.test_y.to(device)
        self.config, self.device = config, device

    def train(self, fused: bool = False) -> float:
        model = mlp(self.config).to(self.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if fused else {}))
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        batch = self.config.batch
        sync(self.device)
        started = time.perf_counter()
        order = torch.randperm(len(self.y), device=self.device)
        for start in range(0, len(self.y), batch):
            index = order[start:start + batch]
            optimizer.zero_grad()
            loss_fn(model(self.x[index]), self.y[index]).backward()
            optimizer.step()
        sync(self.device)
        self.model = model
        return len(self.y) / (time.perf_counter() - started)

    @torch.inference_mode()
    def evaluate(self) -> float:
        self.model.eval()
        sync(self.device)
        started = time.perf_counter()
        for start in range(0, len(self.ty), EVAL_BATCH):
            self.model(self.tx[start:start + EVAL_BATCH]).argmax(1)
        sync(self.device)
        return len(self.ty) / (time.perf_counter() - started)


# ----------------------------------------------------------------------------- (c) stock
class Stock:
    """Avalanche as its documentation shows it: PermutedMNIST + Naive (evaluation batch =
    training batch, Avalanche's default)."""

    def __init__(self, data_root: Path, n_train: int, config: Config, device: torch.device):
        from avalanche.benchmarks.classic import PermutedMNIST

        started = time.perf_counter()
        self.benchmark = PermutedMNIST(n_experiences=1, seed=0, dataset_root=str(data_root))
        self.setup_s = time.perf_counter() - started
        self.n_train, self.config, self.device = n_train, config, device

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
        model = mlp(self.config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = EvaluationPlugin(loggers=[])
        return Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                     criterion=nn.CrossEntropyLoss(), train_mb_size=self.config.batch, train_epochs=1,
                     eval_mb_size=self.config.batch, plugins=[self.counter], evaluator=evaluator,
                     device=self.device)

    def train(self) -> float:
        self.strategy = self._strategy()
        sync(self.device)
        started = time.perf_counter()
        self.strategy.train(self.benchmark.train_stream[0])
        sync(self.device)
        return self.counter.seen / (time.perf_counter() - started)

    def evaluate(self) -> float:
        experience = self.benchmark.test_stream[0]
        sync(self.device)
        started = time.perf_counter()
        self.strategy.eval([experience])
        sync(self.device)
        return len(experience.dataset) / (time.perf_counter() - started)


# --------------------------------------------------------------------------- (d) clbench
class Clbench:
    """The `clbench evaluate` code path on a one-task protocol of the same shape."""

    def __init__(self, data_root: Path, n_train: int, config: Config, device: torch.device, kernel: str):
        from clbench.plugins import get_registry
        from clbench.presets import get_protocol
        from clbench.protocol import apply_overrides

        self.protocol = apply_overrides(get_protocol("pmnist-10"), [
            "benchmark.n_tasks=1", f"benchmark.train_samples_per_task={n_train}",
            "benchmark.test_samples_per_task=10000", f"model.hidden={list(config.hidden)}",
            f"model.batch_norm={str(config.batch_norm).lower()}", f"model.dropout={config.dropout}",
            "training.optimizer=adam", "training.lr=0.001", f"training.batch_size={config.batch}",
            f"training.optimizer_kernel={kernel}",
            "training.epochs=1", "evaluation.curve_points=1", f"evaluation.batch_size={EVAL_BATCH}",
        ])
        self.naive = get_registry().get("naive")
        self.data_root, self.device = data_root, device

    def run(self) -> tuple[float, float, float, float]:
        """Training and evaluation samples/s, set-up seconds and run seconds."""
        from clbench.runner import RunRequest, run

        hp = self.naive.method.parse_hyperparameters({})
        record = run(RunRequest(self.protocol, self.naive, hp, 0, self.data_root, str(self.device)))
        timing = record.phase_timings[0]  # train_s excludes the harness's curve evaluations
        test_samples = self.protocol.benchmark.test_samples_per_task
        return (record.samples_trained[0] / timing.train_s, test_samples / timing.eval_s,
                record.setup_time_s, record.wall_time_s)


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over repeats of ours[i] / theirs[i]."""
    return median([a / b for a, b in zip(ours, theirs)])


PIPELINES = ("lean", "lean_fused", "stock", "clbench", "clbench_fused")


def measure(name: str, config: Config, n_train: int, repeats: int, data_root: Path, device: torch.device,
            gflops: float) -> dict:
    """Every pipeline on one configuration, interleaved; the figures and ratios as a dict."""
    lean, stock = Lean(data_root, n_train, config, device), Stock(data_root, n_train, config, device)
    ours = {"clbench": Clbench(data_root, n_train, config, device, "default"),
            "clbench_fused": Clbench(data_root, n_train, config, device, "fused")}
    for pipeline in ours.values():
        pipeline.run()  # warm-up: imports, the harness process, its data cache
    samples: dict[str, list[float]] = {k: [] for k in PIPELINES}
    evals: dict[str, list[float]] = {k: [] for k in PIPELINES}
    setups: list[float] = []

    def run_lean(fused: bool):
        key = "lean_fused" if fused else "lean"
        samples[key].append(lean.train(fused))
        evals[key].append(lean.evaluate())

    def run_stock():
        samples["stock"].append(stock.train())
        evals["stock"].append(stock.evaluate())

    def run_ours(key: str):
        train_sps, eval_sps, setup_s, _ = ours[key].run()
        samples[key].append(train_sps)
        evals[key].append(eval_sps)
        setups.append(setup_s)

    order = [lambda: run_lean(False), lambda: run_lean(True), run_stock,
             lambda: run_ours("clbench"), lambda: run_ours("clbench_fused")]
    for repeat in range(repeats):  # interleaved, the order rotated: drift hits all alike
        shift = repeat % len(order)
        for step in order[shift:] + order[:shift]:
            step()
    train = {k: median(v) for k, v in samples.items()}
    evaluation = {k: median(v) for k, v in evals.items()}
    flops = flops_per_training_sample(mlp(config))
    return {
        "config": name,
        "batch_size": config.batch,
        "hidden": list(config.hidden),
        "clbench_sps": train["clbench"],
        "clbench_fused_sps": train["clbench_fused"],
        "stock_avalanche_sps": train["stock"],
        "lean_sps": train["lean"],
        "lean_fused_sps": train["lean_fused"],
        "matmul_gflops": gflops,
        "clbench_gflops": train["clbench"] * flops / 1e9,
        "clbench_fused_gflops": train["clbench_fused"] * flops / 1e9,
        # each ratio is the median of the per-repeat ratios: measurements of one repeat
        # are seconds apart, so slow drift of the machine's speed cancels out
        "ratio_vs_stock": paired_ratio(samples["clbench"], samples["stock"]),
        "ratio_vs_lean": paired_ratio(samples["clbench"], samples["lean"]),
        "ratio_vs_lean_fused": paired_ratio(samples["clbench_fused"], samples["lean_fused"]),
        "fused_ratio_vs_stock": paired_ratio(samples["clbench_fused"], samples["stock"]),
        "fused_ratio_vs_default": paired_ratio(samples["clbench_fused"], samples["clbench"]),
        "clbench_eval_sps": evaluation["clbench"],
        "stock_avalanche_eval_sps": evaluation["stock"],
        "lean_eval_sps": evaluation["lean"],
        "eval_ratio_vs_stock": paired_ratio(evals["clbench"], evals["stock"]),
        "clbench_fraction_of_matmul": train["clbench"] * flops / 1e9 / gflops,
        "clbench_fused_fraction_of_matmul": train["clbench_fused"] * flops / 1e9 / gflops,
        "clbench_setup_s": median(setups),
        "stock_setup_s": stock.setup_s,
        "samples_per_measurement": n_train,
    }


def matmul_gflops_on(device: torch.device, seconds: float) -> float:
    if device.type == "cpu":
        return matmul_gflops(seconds)
    n = 8192
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        done += 1
    sync(device)
    return 2 * n**3 * done / (time.perf_counter() - started) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples; finishes within a minute")
    parser.add_argument("--repeats", type=int, default=None, help="measurements per pipeline (median reported)")
    parser.add_argument("--data-root", default=os.environ.get("CLBENCH_DATA_ROOT", "../shared/data"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--model", default="mlp", choices=["mlp", "resnet18-reduced", "resnet18", "resnet32"],
                        help="mlp (permuted MNIST, below) or a ResNet on Split CIFAR-100 images")
    parser.add_argument("--config", default="both", choices=[*CONFIGS, "both"],
                        help="MLP configuration(s) to measure (default: both)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="clbench's training.precision (image models)")
    args = parser.parse_args(argv)
    if args.model != "mlp":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import throughput_images

        return throughput_images.main(args)
    from clbench.runner import resolve_device

    device = resolve_device(args.device)
    repeats = args.repeats or 3
    data_root = Path(args.data_root)
    names = list(CONFIGS) if args.config == "both" else [args.config]

    total_started = time.perf_counter()
    gflops = matmul_gflops_on(device, 1.0 if args.quick else 3.0)
    configs = {}
    for name in names:
        config = CONFIGS[name]
        n_train = config.samples[1] if args.quick else config.samples[0]
        configs[name] = measure(name, config, n_train, repeats, data_root, device, gflops)
    result = {**configs[names[0]], "configs": configs, "device": str(device), "peak_rss_mb": peak_rss_mb(),
              "repeats": repeats, "torch_threads": torch.get_num_threads(),
              "wall_s": time.perf_counter() - total_started}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"matmul (float32, {device}, {torch.get_num_threads()} threads): {gflops:.0f} GFLOP/s")
    labels = (("stock", "stock Avalanche"), ("lean", "lean loop"), ("lean_fused", "lean loop, fused Adam"),
              ("clbench", "clbench"), ("clbench_fused", "clbench, fused Adam"))
    for name, figures in configs.items():
        print(f"\n{name} ({figures['samples_per_measurement']:,} samples per measurement)")
        print(f"{'pipeline':<24}{'train samples/s':>16}")
        for key, label in labels:
            print(f"{label:<24}{figures[key.replace('stock', 'stock_avalanche') + '_sps']:>16,.0f}")
        print(f"clbench / stock: train {figures['ratio_vs_stock']:.2f}x (fused {figures['fused_ratio_vs_stock']:.2f}x), "
              f"eval {figures['eval_ratio_vs_stock']:.2f}x")
        print(f"clbench / lean: {figures['ratio_vs_lean']:.2f}x; fused / lean fused: "
              f"{figures['ratio_vs_lean_fused']:.2f}x")
        print(f"clbench training: {figures['clbench_gflops']:.0f} GFLOP/s = "
              f"{figures['clbench_fraction_of_matmul']:.0%} of matmul (fused: "
              f"{figures['clbench_fused_fraction_of_matmul']:.0%})")
    print(f"\npeak RSS {result['peak_rss_mb']:.0f} MB; medians of {repeats} repeats; {result['wall_s']:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
