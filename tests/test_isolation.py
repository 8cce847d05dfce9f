"""A malicious method cannot reach test data or the harness's evaluator through what it is given.

The attacker walks the object graph from everything the harness hands it (the factory's
context, the strategy, its plugins, each experience): instance attributes, slots,
containers, bound methods, closures and partials. Modules are not followed: any code in
the process can import the harness, which only process isolation would prevent.
"""

import functools
import hashlib
import types

import torch

from clbench import Method, hookimpl
from clbench import plugins as plugins_module
from clbench.evaluation import TaskEvaluator
from clbench.presets import get_protocol
from clbench.protocol import apply_overrides
from clbench.runner import RunRequest, run
from clbench.tasks import load_tasks

PROTOCOL = apply_overrides(get_protocol("smoke"), ["training.epochs=1", "benchmark.train_samples_per_task=500"])


def _digests(x: torch.Tensor) -> set[bytes]:
    rows = x.detach().cpu().reshape(len(x), -1).contiguous()
    return {hashlib.blake2b(row.numpy().tobytes(), digest_size=12).digest() for row in rows}


class Loot:
    rows: set[bytes] = set()
    evaluators = 0
    objects = 0
    origin_vectors = 0  # 1-D int64 tensors as long as a phase: per-sample task ids


def _walk(*roots):
    seen, stack = set(), list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type, str, bytes, int, float)):
            continue
        seen.add(id(obj))
        Loot.objects += 1
        if isinstance(obj, TaskEvaluator):
            Loot.evaluators += 1
        if isinstance(obj, torch.Tensor):
            if obj.dim() >= 2 and len(obj) and obj[0].numel() == 784 and obj.dtype == torch.float32:
                Loot.rows |= _digests(obj.reshape(len(obj), -1))  # flat rows or C x H x W images
            if obj.dim() == 1 and obj.dtype == torch.int64 and len(obj) > 10:
                values = set(obj.unique().tolist())  # smoke's 3 tasks; targets span 0..9
                if len(values) > 1 and values <= {0, 1, 2}:
                    Loot.origin_vectors += 1
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        if isinstance(obj, types.MethodType):
            stack.extend([obj.__self__, obj.__func__])
        if isinstance(obj, types.FunctionType):
            stack.extend(c.cell_contents for c in (obj.__closure__ or ()) if c.cell_contents is not None)
            stack.extend(obj.__defaults__ or ())
        if isinstance(obj, functools.partial):
            stack.extend([obj.func, obj.args, obj.keywords])
        if hasattr(obj, "__dict__"):
            stack.append(vars(obj))
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                stack.append(getattr(obj, slot))


def _malicious_factory(ctx, hp):
    from avalanche.core import SupervisedPlugin
    from avalanche.training.supervised import Naive

    _walk(ctx)

    class Snoop(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs):
            _walk(strategy, strategy.experience)

        def after_training_iteration(self, strategy, **kwargs):
            if strategy.clock.train_epoch_iterations == 1:
                _walk(strategy)

    kwargs = ctx.strategy_kwargs()
    kwargs["plugins"].append(Snoop())
    return Naive(**kwargs)


class Malicious:
    @hookimpl
    def clbench_register_methods(register):
        register(Method(name="snoop", factory=_malicious_factory))


def test_a_malicious_method_finds_training_data_but_no_test_data(data_root, monkeypatch):
    registry = plugins_module.load_registry({"malicious": Malicious})
    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    Loot.rows, Loot.evaluators, Loot.objects, Loot.origin_vectors = set(), 0, 0, 0
    snoop = registry.get("snoop")
    record = run(RunRequest(PROTOCOL, snoop, snoop.method.parse_hyperparameters({}), 0, data_root))
    assert record.accuracy_matrix[0][0] > 0.5  # the run itself was normal

    tasks = load_tasks(PROTOCOL.benchmark, data_root, seed=0)
    train_rows = set().union(*(_digests(t.train_x) for t in tasks))
    test_rows = set().union(*(_digests(t.test_x) for t in tasks))
    assert Loot.objects > 1000  # the walk really explored the strategy
    assert Loot.rows & train_rows  # it does see the training data it was handed
    assert not Loot.rows & test_rows  # but not one test image
    assert Loot.evaluators == 0  # nor the harness's evaluator
    assert Loot.origin_vectors == 0  # nor which task each rehearsed sample came from
