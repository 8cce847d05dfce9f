"""The run audit: what a method did in each phase, counted by the harness and checked.

Every run (evaluate, suite, check-plugin, verify) is audited per phase:

- **budget**: optimizer steps (the step of the optimizer the harness built is wrapped and
  counted) and training-mode forward samples of the strategy's model (a forward pre-hook)
  must stay within `step_limit` and `forward_limit`;
- **updates**: the model's parameters may change only inside counted steps. A fixed
  sample of every parameter's elements is fingerprinted after each counted step and
  compared before the next step and at the phase end. Before a phase's first step the
  model may instead be back at the harness's initial weights (GDumb re-initialises it
  every phase); anything else (a private optimizer, `p.data` edits) fails the run;
- **memory**: after the phase, the training samples the strategy, its plugins and the
  method's modules retain (byte-identical copies of inputs the harness handed over, in
  tensors, numpy arrays and datasets) must stay within the declared `stored_exemplars`
  (`stored_limit`). Avalanche's own references to the phase just trained
  (`strategy.experience`, `adapted_dataset`, `dataloader`, `mbatch`) and the harness's
  plugins are not walked; the same samples kept anywhere else count.

A violation raises an `AuditFailure` naming the phase and the counts (for memory, the
attribute paths holding the samples), so the run ends without a record. A completed run's
counts go into its record (`RunRecord.audit`, built by `RunAudit.summary`). What this
catches and what it cannot: docs/trust.md.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import sys
import types
import weakref
from collections import deque

import numpy as np
import torch
from avalanche.core import SupervisedPlugin
from torch.utils.data import Dataset

from .budgets import RULES_VERSION, forward_limit, step_limit, stored_limit, stored_tolerance
from .errors import BudgetExceeded, MemoryExceeded, UncountedUpdate

#: Parameter elements fingerprinted per parameter tensor (fixed, seeded positions).
FINGERPRINT_ELEMENTS = 32
#: Objects the memory walk visits at most; a larger graph fails the run (fail closed).
MAX_OBJECTS = 1_000_000
#: Strategy attributes that are Avalanche's references to the phase just trained.
CURRENT_PHASE_ATTRIBUTES = ("experience", "adapted_dataset", "dataloader", "mbatch", "mb_output")
_TRAILING_INDEX = re.compile(r"(\[\d+\])+$")
#: Top-level packages whose module globals are never walked (the harness and libraries).
_LIBRARIES = {"avalanche", "torch", "clbench", "numpy", "builtins", "pydantic", "typing",
              "collections", "copy", "functools", "abc", "enum"}


def row_keys(x, width: int) -> list[int]:
    """A 64-bit content key per row of `width` values (a tensor or numpy array of any shape)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        x = x.contiguous().numpy()
    rows = np.ascontiguousarray(x).reshape(-1, width)
    return [int.from_bytes(hashlib.blake2b(row, digest_size=8).digest(), "little", signed=True)
            for row in rows]


class _Plugin(SupervisedPlugin):
    """The audit's foothold in the strategy: follows model swaps (GDumb) between callbacks."""

    def __init__(self, audit: "RunAudit"):
        super().__init__()
        self._audit = audit

    def before_training_exp(self, strategy, *args, **kwargs):
        self._audit._follow(strategy)

    def before_training_iteration(self, strategy, *args, **kwargs):
        if strategy.model is not self._audit._model:
            self._audit._follow(strategy)


class RunAudit:
    """Counts and checks one run, phase by phase (see the module docstring)."""

    def __init__(self, epochs: int, batch_size: int, input_size: int, memory: int,
                 dtype: torch.dtype = torch.float32, iterations: int | None = None):
        self.epochs, self.batch_size, self.input_size, self.memory = epochs, batch_size, input_size, memory
        self.iterations = iterations
        self.dtype = dtype
        self.plugin = _Plugin(self)
        self.phases: list[dict] = []
        self.phase = 0
        self.phase_samples = 0
        self.steps = 0
        self.forward_samples = 0
        self.update_checks = 0
        self._step_limit = self._forward_limit = 0
        self._strategy = None
        self._optimizer = None
        self._model = None
        self._params: list[torch.Tensor] = []
        self._indices: dict[int, torch.Tensor] = {}
        self._views: dict[int, tuple] = {}  # id(parameter) -> (it, data_ptr, numpy view, index)
        self._device_indices: dict[tuple[int, str], torch.Tensor] = {}
        self._initial: torch.Tensor | None = None
        self._expected: torch.Tensor | None = None
        self._first_check = True
        self._harness: set[int] = set()
        self._method_modules: list[types.ModuleType] = []
        self._retained: set[int] = set()
        self._known: set[int] = set()
        self._deferred: list[tuple[torch.Tensor, torch.Tensor]] = []
        # a module-level function and a token: the hook survives deepcopy and pickling
        # (models travel to the predictor process, where the token means nothing)
        self._token = next(_TOKENS)
        _AUDITS[self._token] = self
        self._hook = functools.partial(_forward_hook, self._token)

    # -- attaching ------------------------------------------------------------------

    def attach(self, strategy, harness_plugins=(), factory=None) -> None:
        """Start watching a freshly built strategy (before any training or restore).

        `factory` is the method's factory: the globals of its module are walked too.
        """
        self._strategy = strategy
        self._optimizer = strategy.optimizer
        self._wrap_step(strategy.optimizer)
        self._harness = {id(p) for p in (*harness_plugins, self.plugin, strategy.evaluator)}
        module = sys.modules.get(getattr(factory, "__module__", None) or "")
        self._method_modules = [module] if module is not None else []
        self._follow(strategy)
        self._initial = self._fingerprint()
        self._expected = self._initial

    def _follow(self, strategy) -> None:
        """Watch `strategy.model` (a method may replace it, as GDumb does every phase)."""
        if strategy.optimizer is not self._optimizer:
            raise UncountedUpdate(f"phase {self.phase}: strategy.optimizer was replaced by a "
                                  f"{type(strategy.optimizer).__name__} the harness did not build")
        model = strategy.model
        if model is not self._model:
            if not any(_is_hook(hook, self._token) for hook in model._forward_pre_hooks.values()):
                model.register_forward_pre_hook(self._hook, with_kwargs=True)
            self._model = model
            self._views = {}
        self._params = [p for p in model.parameters()]

    def _wrap_step(self, optimizer) -> None:
        real_step = optimizer.step
        audit = self

        def step(*args, **kwargs):
            audit._before_step()
            result = real_step(*args, **kwargs)
            audit._after_step()
            return result

        optimizer.step = step

    # -- per phase --------------------------------------------------------------------

    def begin_phase(self, phase: int, x: torch.Tensor) -> None:
        """Called by the runner with the phase's training inputs before the method trains."""
        self.phase = phase
        self.phase_samples = len(x)
        # counters are reset when a phase ends, not here: whatever a method does between two
        # phases (in a checkpoint hook, say) is charged to the next phase
        self._step_limit = step_limit(self.epochs, self.batch_size, len(x), self.memory, self.iterations)
        self._forward_limit = forward_limit(self.epochs, self.batch_size, len(x), self.memory, self.iterations)
        self._first_check = True
        self._known = self._retained | set(row_keys(x, self.input_size))

    def end_phase(self, strategy) -> dict:
        """Check the finished phase (updates, budget, memory) and record its counts."""
        self._follow(strategy)
        self._check_parameters(self._fingerprint())
        self._settle_deferred()
        stored, where = self._measure_memory(strategy)
        limit = stored_limit(self.memory)
        if stored > limit:
            places = "; ".join(f"{path} holds {count}" for path, count in where[:3])
            raise MemoryExceeded(
                f"phase {self.phase}: the strategy retains {stored} training samples, but the method "
                f"declares stored_exemplars={self.memory} (limit {limit} with tolerance "
                f"{stored_tolerance(self.memory)}): {places}")
        entry = {
            "phase": self.phase,
            "phase_samples": self.phase_samples,
            "steps": self.steps,
            "step_limit": self._step_limit,
            "forward_samples": self.forward_samples,
            "forward_limit": self._forward_limit,
            "stored_samples": stored,
            "stored_limit": limit,
            "update_checks": self.update_checks,
            "verdict": "pass",
        }
        self.phases.append(entry)
        self.steps = self.forward_samples = self.update_checks = 0
        return entry

    def summary(self) -> dict:
        """The record's `audit` block."""
        return {
            "rules_version": RULES_VERSION,
            "declared_exemplars": self.memory,
            "stored_samples": max((p["stored_samples"] for p in self.phases), default=0),
            "steps": sum(p["steps"] for p in self.phases),
            "forward_samples": sum(p["forward_samples"] for p in self.phases),
            "phases": [dict(p) for p in self.phases],
        }

    # -- checkpoints --------------------------------------------------------------------

    def state(self) -> dict:
        """Plain state for the per-phase checkpoint (so a resumed run audits identically)."""
        self._settle_deferred()
        return {"phases": [dict(p) for p in self.phases], "expected": self._expected.clone(),
                "retained": torch.tensor(sorted(self._retained), dtype=torch.int64)}

    def load(self, state: dict) -> None:
        self.phases = [dict(p) for p in state["phases"]]
        self._expected = state["expected"].to(self._initial.device)
        self._retained = set(state["retained"].tolist())

    # -- counting ---------------------------------------------------------------------

    def _count_forward(self, n: int) -> None:
        self.forward_samples += n
        if self.forward_samples > self._forward_limit:
            raise BudgetExceeded(
                f"phase {self.phase}: {self.forward_samples} training-mode forward samples exceed "
                f"the budget of {self._forward_limit} ({self._rule()}; each step may forward a "
                f"minibatch plus the declared memory, plus one extra pass)")

    def _before_step(self) -> None:
        self._check_parameters(self._fingerprint())
        if self.steps + 1 > self._step_limit:
            raise BudgetExceeded(
                f"phase {self.phase}: optimizer step {self.steps + 1} exceeds the budget of "
                f"{self._step_limit} steps ({self._rule()})")

    def _after_step(self) -> None:
        self.steps += 1
        self._expected = self._fingerprint()

    def _rule(self) -> str:
        if self.iterations is not None:
            return f"training.iterations {self.iterations} per phase"
        return (f"epochs {self.epochs} x ceil(({self.phase_samples} phase samples + "
                f"{self.memory} declared memory) / batch {self.batch_size})")

    # -- parameter fingerprints -------------------------------------------------------

    def _fingerprint(self) -> torch.Tensor:
        """The bytes of a fixed, seeded sample of every parameter's elements (uint8)."""
        pieces = [self._sample(p) for p in self._params]
        if not pieces:
            return torch.empty(0, dtype=torch.uint8)
        if all(isinstance(piece, np.ndarray) for piece in pieces):
            return torch.from_numpy(np.concatenate(pieces))
        return torch.cat([torch.from_numpy(piece) if isinstance(piece, np.ndarray)
                          else piece.view(torch.uint8) for piece in pieces])

    def _sample(self, p: torch.Tensor):
        """One parameter's sampled elements: numpy on the CPU (a cached view: ~1 us), else torch.

        The view is refreshed whenever the parameter's storage changes (`p.data = ...`).
        """
        cached = self._views.get(id(p))
        if cached is not None and cached[0] is p and cached[1] == p.data_ptr() and cached[2].size == p.numel():
            return cached[2][cached[3]].view(np.uint8)
        n = p.numel()
        index = self._indices.get(n)
        if index is None:
            generator = torch.Generator().manual_seed(n)
            index = torch.randint(max(n, 1), (min(n, FINGERPRINT_ELEMENTS),), generator=generator)
            self._indices[n] = index
        if p.device.type == "cpu" and p.is_contiguous() and p.dtype != torch.bfloat16:
            view = p.detach().reshape(-1).numpy()  # shares p's storage (same data_ptr, same size)
            self._views[id(p)] = (p, p.data_ptr(), view, index.numpy())
            return view[index.numpy()].view(np.uint8)
        flat = p.detach().reshape(-1)
        key = (n, str(flat.device))
        if key not in self._device_indices:  # copied to the device once, not every step
            self._device_indices[key] = index.to(flat.device)
        return flat[self._device_indices[key]].view(torch.uint8)

    def _check_parameters(self, current: torch.Tensor) -> None:
        """`current` must equal the fingerprint after the last counted step.

        At the phase's first check it may instead equal the initial weights' fingerprint.
        On a GPU the comparison is queued and settled at the phase end (no per-step sync).
        """
        self.update_checks += 1
        allowed = [self._expected] + ([self._initial] if self._first_check else [])
        self._first_check = False
        if current.device.type != "cpu":
            if all(a.shape == current.shape for a in allowed):
                self._deferred.append((current, torch.stack(allowed)))
                return
        if not any(a.shape == current.shape and torch.equal(a, current) for a in allowed):
            self._uncounted()

    def _settle_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for current, allowed in deferred:
            if not bool((allowed == current).all(dim=1).any()):
                self._uncounted()

    def _uncounted(self):
        raise UncountedUpdate(
            f"phase {self.phase}: the model's parameters changed outside the harness's optimizer "
            f"steps (after {self.steps} counted steps); updates must go through strategy.optimizer")

    # -- stored samples -----------------------------------------------------------------

    def _measure_memory(self, strategy) -> tuple[int, list[tuple[str, int]]]:
        """Unique training samples reachable from the strategy and the method's modules."""
        found: set[int] = set()
        where: dict[str, int] = {}
        for path, rows in self._candidates(strategy):
            new = [k for k in rows if k in self._known and k not in found]
            if new:
                found.update(new)
                container = _TRAILING_INDEX.sub("", path)  # kept[0], kept[1], ... -> kept
                where[container] = where.get(container, 0) + len(new)
        self._retained = found
        return len(found), sorted(where.items(), key=lambda item: -item[1])

    def _roots(self, strategy):
        for name, value in vars(strategy).items():
            if name not in CURRENT_PHASE_ATTRIBUTES:
                yield f"strategy.{name}", value
        seen = set()
        classes = [type(strategy), *(type(p) for p in strategy.plugins if id(p) not in self._harness)]
        for cls in classes:
            for klass in cls.__mro__:
                module = klass.__module__.split(".")[0]
                if module in _LIBRARIES or id(klass) in seen:
                    continue
                seen.add(id(klass))
                for name, value in list(vars(klass).items()):
                    yield f"{klass.__module__}.{klass.__qualname__}.{name}", value
        for module in self._method_modules:
            if module.__name__.split(".")[0] not in _LIBRARIES:
                for name, value in list(vars(module).items()):
                    if not (name.startswith("__") and name.endswith("__")):
                        yield f"{module.__name__}.{name}", value

    def _candidates(self, strategy):
        """(path, row keys) for every tensor, array and dataset that could hold samples."""
        width = self.input_size
        seen = set(self._harness) | {id(self)}
        alive = []  # visited objects stay referenced, so no id is reused during the walk
        queue = deque(self._roots(strategy))
        visited = 0
        while queue:
            path, obj = queue.popleft()
            if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, type,
                                               types.ModuleType)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            alive.append(obj)
            visited += 1
            if visited > MAX_OBJECTS:
                raise MemoryExceeded(f"phase {self.phase}: more than {MAX_OBJECTS} objects are "
                                     "reachable from the strategy; its memory cannot be audited")
            if isinstance(obj, torch.Tensor):
                if obj.is_floating_point() and obj.numel() and obj.numel() % width == 0 \
                        and obj.dtype == self.dtype and obj.layout == torch.strided:
                    yield path, row_keys(obj, width)
                continue
            if isinstance(obj, np.ndarray):
                if obj.dtype == np.float32 and obj.size and obj.size % width == 0:
                    yield path, row_keys(obj, width)
                continue
            if _dataset_like(obj):
                keys, others = _dataset_items(obj, width, path, self.phase)
                yield path, keys
                queue.extend(others)
                continue
            if isinstance(obj, dict):
                for key, value in obj.items():
                    queue.append((f"{path}[{key!r}]", value))
                    queue.append((f"{path}.keys()", key))
            elif isinstance(obj, (list, tuple, deque)):
                queue.extend((f"{path}[{i}]", value) for i, value in enumerate(obj))
            elif isinstance(obj, (set, frozenset)):
                queue.extend((f"{path}{{...}}", value) for value in obj)
            elif isinstance(obj, functools.partial):
                queue.extend([(f"{path}.func", obj.func), (f"{path}.args", obj.args),
                              (f"{path}.keywords", obj.keywords)])
            elif isinstance(obj, types.MethodType):
                queue.append((f"{path}.__self__", obj.__self__))
            elif isinstance(obj, types.FunctionType):
                for cell in obj.__closure__ or ():
                    try:
                        queue.append((f"{path}.<closure>", cell.cell_contents))
                    except ValueError:  # an empty cell
                        pass
                queue.extend((f"{path}.<default>", value) for value in obj.__defaults__ or ())
            if hasattr(obj, "__dict__") and not isinstance(obj, types.FunctionType):
                try:
                    attributes = vars(obj)
                except TypeError:
                    attributes = {}
                queue.extend((f"{path}.{name}", value) for name, value in list(attributes.items()))
            for slot in getattr(type(obj), "__slots__", ()):
                if isinstance(slot, str) and slot != "__dict__" and hasattr(obj, slot):
                    queue.append((f"{path}.{slot}", getattr(obj, slot)))


def _dataset_like(obj) -> bool:
    """A torch dataset or an Avalanche dataset-like sequence (datasets, flat data, streams).

    Other containers are walked through their attributes, which finds what they hold.
    """
    cls = type(obj)
    if not (hasattr(cls, "__len__") and hasattr(cls, "__getitem__")) or isinstance(obj, torch.nn.Module):
        return False
    return isinstance(obj, Dataset) or cls.__module__.split(".")[0] == "avalanche"


def _dataset_items(dataset, width: int, path: str, phase: int):
    """Row keys of a dataset's inputs, item by item (what a loader over it would yield).

    Items that are not samples (a stream's experiences) are returned to be walked.
    """
    keys: list[int] = []
    others: list[tuple[str, object]] = []
    try:
        for i in range(len(dataset)):
            item = dataset[i]
            x = item[0] if isinstance(item, (tuple, list)) and len(item) else item
            if isinstance(x, torch.Tensor) or isinstance(x, np.ndarray):
                size = x.numel() if isinstance(x, torch.Tensor) else x.size
                if size and size % width == 0:
                    keys.extend(row_keys(x, width))
            else:
                others.append((f"{path}[{i}]", item))
    except Exception as exc:  # fail closed: a dataset the audit cannot read is not ignored
        raise MemoryExceeded(f"phase {phase}: cannot read the dataset at {path} to audit the "
                             f"strategy's memory ({type(exc).__name__}: {exc})") from None
    return keys, others


#: token -> live audit, for the forward hooks on the models it watches.
_AUDITS: "weakref.WeakValueDictionary[int, RunAudit]" = weakref.WeakValueDictionary()
_TOKENS = itertools.count(1)


def _is_hook(hook, token: int) -> bool:
    return isinstance(hook, functools.partial) and hook.func is _forward_hook and hook.args == (token,)


def _forward_hook(token: int, module, args, kwargs):
    audit = _AUDITS.get(token)
    if audit is not None and module is audit._model and module.training:
        audit._count_forward(_batch_size(args, kwargs))


def _batch_size(args, kwargs) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return int(value.shape[0]) if value.dim() else 1
    return 0
