"""Image throughput: clbench's ResNet pipeline against stock Avalanche and a lean loop.

`python benchmarks/throughput.py --model resnet18-reduced [--device cuda] [--quick] [--json]`
runs this module. Everything runs in one process, interleaved, as for the MLP:

  (a) a lean hand-written loop: standardised (N, 3, 32, 32) tensors on the device,
      index-sliced minibatches, the same batched crop-and-flip as clbench (`clbench.augment`);
  (b) stock Avalanche: `avalanche.benchmarks.classic.SplitCIFAR100` with its default train
      transforms (per sample: `RandomCrop(32, padding=4)`, `RandomHorizontalFlip`,
      `ToTensor`, `Normalize`, in a `DataLoader`) and `Naive`;
  (c) clbench: `clbench.runner.run` on `scifar100-10-class` cut to one task of the same
      samples, with `naive` and `training.augmentation=crop-flip`.

Same network (the protocol's `--model`, 100 outputs), SGD lr 0.03, batch 32 (the
preset's, Mammoth's), one pass over the same images. Where CIFAR-100 is not in the data
root, images of the real size are generated in torchvision's on-disk format (as
tests/image_data.py writes them) and all three pipelines read those.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

BATCH = 32
LR = 0.03
REPO = Path(__file__).resolve().parents[1]


def _network(architecture: str, device) -> nn.Module:
    from clbench.models import build_model
    from clbench.models.build import place
    from clbench.presets import get_protocol
    from clbench.protocol import apply_overrides

    protocol = apply_overrides(get_protocol("scifar100-10-class"),
                               ["benchmark.n_tasks=1", f"model.architecture={architecture}"])
    return place(build_model(protocol.model, protocol.benchmark), protocol.model, device)


def cifar_root(data_root: Path, n_train: int) -> tuple[Path, str]:
    """A data root holding CIFAR-100: the given one if it does, else generated real-size images."""
    if (data_root / "cifar-100-python" / "train").exists():
        return data_root, "real CIFAR-100"
    sys.path.insert(0, str(REPO / "tests"))
    import image_data

    folder = Path(tempfile.mkdtemp(prefix="clbench-throughput-cifar-"))
    per_class = -(-n_train // 100)
    md5 = image_data.write_cifar100(folder, train_per_class=per_class, test_per_class=10)
    (folder / "sitecustomize.py").write_text(image_data.SITECUSTOMIZE)
    # the harness process reads the data: it must accept the generated files' md5s too
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    os.environ["CLBENCH_TEST_CIFAR100_MD5"] = json.dumps(md5)
    from torchvision.datasets import CIFAR100

    CIFAR100.train_list = [["train", md5["train"]]]
    CIFAR100.test_list = [["test", md5["test"]]]
    CIFAR100.meta = {**CIFAR100.meta, "md5": md5["meta"]}
    return folder, f"generated 32x32 images ({per_class * 100} training images)"


class Lean:
    """The floor: pre-standardised image tensors on the device, batched crop-and-flip."""

    def __init__(self, root: Path, n_train: int, architecture: str, device):
        from clbench.augment import black_pixel
        from clbench.datasets import load_raw

        raw = load_raw("cifar100", root)
        self.x = raw.standardised(raw.train_x[:n_train]).view(-1, 3, 32, 32).to(device)
        self.y = raw.train_y[:n_train].to(device)
        self.fill = black_pixel("split-cifar100").to(device)
        self.architecture, self.device = architecture, torch.device(device)

    def train(self) -> float:
        from clbench.augment import PADDING, crop_flip, draw

        model = _network(self.architecture, self.device).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        loss_fn = nn.CrossEntropyLoss()
        generator = torch.Generator(device=self.device).manual_seed(0)
        _sync(self.device)
        started = time.perf_counter()
        order = torch.randperm(len(self.y), device=self.device)
        for start in range(0, len(self.y), BATCH):
            index = order[start:start + BATCH]
            x = crop_flip(self.x[index], *draw(len(index), PADDING, generator, self.device), PADDING, self.fill)
            optimizer.zero_grad()
            loss_fn(model(x), self.y[index]).backward()
            optimizer.step()
        _sync(self.device)
        return len(self.y) / (time.perf_counter() - started)


class Stock:
    """Avalanche as its documentation shows it: SplitCIFAR100 (default transforms) + Naive."""

    def __init__(self, root: Path, n_train: int, architecture: str, device):
        from avalanche.benchmarks.classic import SplitCIFAR100

        started = time.perf_counter()
        self.benchmark = SplitCIFAR100(n_experiences=1, seed=0, fixed_class_order=list(range(100)),
                                       dataset_root=str(root))
        self.setup_s = time.perf_counter() - started
        self.n_train, self.architecture, self.device = n_train, architecture, torch.device(device)

    def train(self) -> float:
        from avalanche.core import SupervisedPlugin
        from avalanche.training.plugins import EvaluationPlugin
        from avalanche.training.supervised import Naive

        n_train = self.n_train

        class StopAfter(SupervisedPlugin):
            seen = 0

            def after_training_iteration(self, strategy, **kwargs):
                self.seen += len(strategy.mb_y)
                if self.seen >= n_train:
                    strategy.stop_training()

        counter = StopAfter()
        model = _network(self.architecture, self.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = EvaluationPlugin(loggers=[])
        strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=LR),
                         criterion=nn.CrossEntropyLoss(), train_mb_size=BATCH, train_epochs=1,
                         eval_mb_size=BATCH, plugins=[counter], evaluator=evaluator, device=self.device)
        _sync(self.device)
        started = time.perf_counter()
        strategy.train(self.benchmark.train_stream[0])
        _sync(self.device)
        return counter.seen / (time.perf_counter() - started)


class Clbench:
    """The `clbench evaluate` code path: scifar100-10-class cut to one task of n_train images."""

    def __init__(self, root: Path, n_train: int, architecture: str, device, precision: str):
        from clbench.plugins import get_registry
        from clbench.presets import get_protocol
        from clbench.protocol import apply_overrides

        self.protocol = apply_overrides(get_protocol("scifar100-10-class"), [
            "benchmark.n_tasks=1", f"benchmark.train_samples_per_task={n_train}",
            "benchmark.test_samples_per_task=1000", f"model.architecture={architecture}",
            f"training.batch_size={BATCH}", f"training.lr={LR}", "training.epochs=1",
            f"training.precision={precision}", "evaluation.curve_points=1",
            "evaluation.curve_test_samples=100",
        ])
        assert self.protocol.training.augmentation == "crop-flip"
        self.naive = get_registry().get("naive")
        self.root, self.device = root, device

    def run(self) -> tuple[float, float]:
        from clbench.runner import RunRequest, run

        hp = self.naive.method.parse_hyperparameters({})
        record = run(RunRequest(self.protocol, self.naive, hp, 0, self.root, device=str(self.device)))
        return record.samples_trained[0] / record.phase_timings[0].train_s, record.wall_time_s


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    return statistics.median([a / b for a, b in zip(ours, theirs)])


def main(args) -> int:
    from clbench.runner import resolve_device

    device = resolve_device(args.device)
    repeats = args.repeats or 3
    n_train = (640 if device.type == "cpu" else 10000) if args.quick else (5000 if device.type == "cpu" else 50000)
    total_started = time.perf_counter()
    root, data = cifar_root(Path(args.data_root), n_train)
    lean = Lean(root, n_train, args.model, device)
    stock = Stock(root, n_train, args.model, device)
    ours = Clbench(root, n_train, args.model, device, args.precision)
    ours.run()  # warm-up: imports, the harness process, its data cache
    samples: dict[str, list[float]] = {"lean": [], "stock": [], "clbench": []}
    runs: list[float] = []

    def measure_clbench():
        sps, wall = ours.run()
        samples["clbench"].append(sps)
        runs.append(wall)

    order = [lambda: samples["lean"].append(lean.train()),
             lambda: samples["stock"].append(stock.train()), measure_clbench]
    for repeat in range(repeats):  # interleaved, the order rotated: drift hits all three alike
        for measure in order[repeat % 3:] + order[:repeat % 3]:
            measure()
    train = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "model": args.model,
        "device": str(device),
        "precision": args.precision,
        "data": data,
        "clbench_sps": train["clbench"],
        "stock_avalanche_sps": train["stock"],
        "lean_sps": train["lean"],
        "ratio_vs_stock": paired_ratio(samples["clbench"], samples["stock"]),
        "ratio_vs_lean": paired_ratio(samples["clbench"], samples["lean"]),
        "clbench_run_s": statistics.median(runs),
        "parameters": sum(p.numel() for p in _network(args.model, "cpu").parameters()),
        "batch_size": BATCH,
        "samples_per_measurement": n_train,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "wall_s": time.perf_counter() - total_started,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.model} ({result['parameters']:,} parameters) on {device}, {data}, batch {BATCH}, "
          f"random crop + flip")
    print(f"{'pipeline':<22}{'train samples/s':>16}")
    for key, label in (("stock", "stock Avalanche"), ("lean", "lean PyTorch loop"), ("clbench", "clbench")):
        print(f"{label:<22}{train[key]:>16,.0f}")
    print(f"clbench / stock: {result['ratio_vs_stock']:.2f}x; clbench / lean: {result['ratio_vs_lean']:.2f}x")
    print(f"medians of {repeats} repeats of {n_train} samples; {result['wall_s']:.0f} s in all")
    return 0
