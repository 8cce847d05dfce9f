"""Method plugins that try to reach test data, run by tests/test_isolation_routes.py.

Each attack runs inside a real `clbench.runner.run`, in a fresh interpreter (so nothing the
test process itself loaded can be mistaken for a leak), and writes what it found to a
JSON file named by $ATTACK_REPORT.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
import types

import torch

from clbench import Method, hookimpl


def row_digests(x: torch.Tensor) -> set[str]:
    rows = x.detach().cpu().reshape(len(x), -1).contiguous()
    return {hashlib.blake2b(r.numpy().tobytes(), digest_size=12).hexdigest() for r in rows}


def label_digest(y: torch.Tensor) -> str:
    return hashlib.blake2b(y.detach().cpu().contiguous().numpy().tobytes(), digest_size=12).hexdigest()


class Loot:
    def __init__(self, targets: dict):
        self.test_rows = set(targets["test_rows"])
        self.test_labels = set(targets["test_labels"])
        self.train_rows = set(targets["train_rows"])
        self.found_test_rows = 0
        self.found_test_labels = 0
        self.found_train_rows = 0
        self.raw_test_sets = 0
        self.tensors = 0

    def inspect(self, obj) -> None:
        if not isinstance(obj, torch.Tensor) or obj.is_meta or obj.device.type != "cpu":
            return
        self.tensors += 1
        try:
            if obj.dim() >= 2 and len(obj) and obj[0].numel() == 784 and obj.dtype == torch.float32:
                rows = row_digests(obj)  # flat rows or C x H x W images
                self.found_test_rows += len(rows & self.test_rows)
                self.found_train_rows += len(rows & self.train_rows)
            elif obj.dim() == 1 and obj.dtype == torch.int64 and len(obj) > 10:
                if label_digest(obj) in self.test_labels:
                    self.found_test_labels += 1
            elif obj.dim() == 3 and tuple(obj.shape) == (10000, 28, 28):
                self.raw_test_sets += 1
        except RuntimeError:
            pass


def walk_everything(loot: Loot) -> None:
    """The three in-memory routes: every gc-tracked object, every stack frame, every module."""
    seen = set()
    stack = list(gc.get_objects())
    frame = sys._getframe()
    while frame is not None:  # the calling frames: run() and whatever called it
        stack.append(frame.f_locals)
        frame = frame.f_back
    stack.extend(m.__dict__ for m in list(sys.modules.values()) if m is not None
                 and m.__name__.split(".")[0] in ("clbench", "clbench_baselines", "__main__"))
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type, str, bytes, int, float)):
            continue
        seen.add(id(obj))
        try:
            _expand(obj, stack, loot)
        except Exception:  # noqa: BLE001 - some library objects refuse to be looked at
            pass


def _expand(obj, stack: list, loot: Loot) -> None:
        if isinstance(obj, torch.Tensor):
            loot.inspect(obj)
            return
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, types.MethodType):
            stack.extend([obj.__self__, obj.__func__])
        elif isinstance(obj, types.FunctionType):
            stack.extend(c.cell_contents for c in (obj.__closure__ or ()) if _filled(c))
            stack.append(obj.__globals__)
        if hasattr(obj, "__dict__") and not isinstance(obj, types.FunctionType):
            stack.append(vars(obj))


def _filled(cell) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def _report(data: dict) -> None:
    with open(os.environ["ATTACK_REPORT"], "w") as handle:
        json.dump(data, handle)


def _memory_thief(ctx, hp):
    from avalanche.core import SupervisedPlugin
    from avalanche.training.supervised import Naive

    with open(os.environ["ATTACK_TARGETS"]) as handle:
        targets = json.load(handle)
    loot = Loot(targets)

    class Thief(SupervisedPlugin):
        def after_training_exp(self, strategy, **kwargs):
            walk_everything(loot)
            _report(vars(loot) | {"test_rows": None, "test_labels": None, "train_rows": None})

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(Thief())
    return Naive(**kwargs)


def _disk_thief(ctx, hp):
    """Reads the MNIST test labels straight from the data root."""
    from avalanche.training.supervised import Naive

    path = os.path.join(os.environ["ATTACK_DATA_ROOT"], "MNIST", "raw", "t10k-labels-idx1-ubyte")
    try:
        with open(path, "rb") as handle:
            outcome = f"read {len(handle.read())} bytes"
    except OSError as exc:
        outcome = f"denied: {type(exc).__name__}"
    _report({"outcome": outcome})
    return Naive(**ctx.strategy_kwargs())


def _oracle_abuser(ctx, hp):
    """Asks the harness for learning-curve accuracies far beyond the protocol's schedule."""
    from avalanche.core import SupervisedPlugin
    from avalanche.training.supervised import Naive

    from clbench import probes

    class Oracle(SupervisedPlugin):
        def after_training_iteration(self, strategy, **kwargs):
            probe = next(p for p in strategy.plugins if isinstance(p, probes.PhaseProbe))
            for _ in range(10):
                probes._MEASURES[probe._token](strategy.model, 0)

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(Oracle())
    return Naive(**kwargs)


class Attackers:
    @hookimpl
    def clbench_register_methods(register):
        register(Method(name="memory-thief", factory=_memory_thief))
        register(Method(name="disk-thief", factory=_disk_thief))
        register(Method(name="oracle-abuser", factory=_oracle_abuser))
