"""Per-phase checkpoint hooks for the baselines: their Avalanche plugins' state as tensors.

The harness saves the model, the optimizer, Avalanche's clock and every RNG; these hooks
add what each method learned besides (importances and anchors, an old model, sample
buffers), as plain tensors, numbers and lists, and rebuild it inside a freshly made
strategy. `clbench check-plugin` (and tests/test_checkpoints.py) stop each method after
a phase, resume it, and require the same record as an uninterrupted run.

Buffers are rebuilt as tensor datasets holding the same samples, in the same order,
with the same targets, task labels and (for DER) stored logits, which is all
Avalanche's replay loaders read. Not covered (a killed run restarts from its first
phase): iCaRL, whose exemplar sets, class means and herding state live in several
interlocked objects.
"""

from __future__ import annotations

import copy

from clbench import Checkpointing


def _plugin(strategy, class_name: str):
    """The strategy's plugin of that class (or subclass) name."""
    for plugin in strategy.plugins:
        if any(cls.__name__ == class_name for cls in type(plugin).__mro__):
            return plugin
    raise LookupError(f"strategy has no {class_name}")


def _param_data(entries: dict) -> dict:
    return {name: {"name": pd.name, "data": pd.data.detach().clone()} for name, pd in entries.items()}


def _restore_param_data(target: dict, state: dict) -> None:
    from avalanche.training.utils import ParamData

    target.clear()
    for name, entry in state.items():
        target[name] = ParamData(entry["name"], init_tensor=entry["data"].clone(),
                                 device=entry["data"].device)


def _dataset_state(dataset) -> dict:
    """A buffer's samples as three tensors (input, target, task label), in buffer order."""
    import torch  # here, not at the top: listing methods must not import torch

    if len(dataset) == 0:
        return {"x": torch.empty(0), "y": torch.empty(0, dtype=torch.long),
                "t": torch.empty(0, dtype=torch.long)}
    items = [dataset[i] for i in range(len(dataset))]
    x = torch.stack([torch.as_tensor(item[0]) for item in items])
    y = torch.stack([torch.as_tensor(item[1]) for item in items])
    t = torch.as_tensor([int(item[2]) for item in items], dtype=torch.long)
    state = {"x": x, "y": y, "t": t}
    if len(items[0]) > 3:  # DER's buffers also return each sample's stored logits
        state["logits"] = torch.stack([torch.as_tensor(item[3]) for item in items])
    return state


def _dataset(state: dict):
    from avalanche.benchmarks.utils import (
        _make_taskaware_tensor_classification_dataset,
        make_avalanche_dataset,
    )
    from avalanche.benchmarks.utils.data_attribute import TensorDataAttribute
    from avalanche.benchmarks.utils.flat_data import FlatData

    dataset = _make_taskaware_tensor_classification_dataset(
        state["x"], state["y"], targets=state["y"], task_labels=state["t"].tolist())
    if "logits" in state:  # as avalanche.training.supervised.der attaches them
        logits = FlatData([list(state["logits"])], discard_elements_not_in_indices=True)
        dataset = make_avalanche_dataset(dataset, data_attributes=[
            TensorDataAttribute(logits, name="logits", use_in_getitem=True)])
    return dataset


def _reservoir_state(buffer) -> dict:
    return {"max_size": buffer.max_size, "weights": buffer._buffer_weights.clone(),
            "samples": _dataset_state(buffer.buffer)}


def _reservoir(state: dict):
    from avalanche.training.storage_policy import ReservoirSamplingBuffer

    buffer = ReservoirSamplingBuffer(state["max_size"])
    buffer.buffer = _dataset(state["samples"])
    buffer._buffer_weights = state["weights"].clone()
    return buffer


# --- regularisation -------------------------------------------------------------------

def _save_ewc(strategy) -> dict:
    plugin = _plugin(strategy, "EWCPlugin")
    if type(plugin).__name__ == "MergedEWCPlugin":
        return {name: {k: v.clone() for k, v in getattr(plugin, name).items()}
                for name in ("fisher", "weighted_anchor", "anchor")}
    return {"saved_params": {t: _param_data(p) for t, p in plugin.saved_params.items()},
            "importances": {t: _param_data(p) for t, p in plugin.importances.items()}}


def _load_ewc(strategy, state: dict) -> None:
    plugin = _plugin(strategy, "EWCPlugin")
    if type(plugin).__name__ == "MergedEWCPlugin":
        for name, tensors in state.items():
            setattr(plugin, name, {k: v.clone() for k, v in tensors.items()})
        return
    for attribute in ("saved_params", "importances"):
        target = getattr(plugin, attribute)
        target.clear()
        for t, entries in state[attribute].items():
            _restore_param_data(target[t], entries)


def _save_si(strategy) -> dict:
    plugin = _plugin(strategy, "SynapticIntelligencePlugin")
    return {"ewc_data": [_param_data(part) for part in plugin.ewc_data],
            "syn_data": {key: _param_data(part) for key, part in plugin.syn_data.items()}}


def _load_si(strategy, state: dict) -> None:
    plugin = _plugin(strategy, "SynapticIntelligencePlugin")
    for part, entries in zip(plugin.ewc_data, state["ewc_data"]):
        _restore_param_data(part, entries)
    for key, entries in state["syn_data"].items():
        _restore_param_data(plugin.syn_data[key], entries)


def _save_mas(strategy) -> dict:
    plugin = _plugin(strategy, "MASPlugin")
    return {name: None if getattr(plugin, name) is None else _param_data(getattr(plugin, name))
            for name in ("params", "importance")}


def _load_mas(strategy, state: dict) -> None:
    plugin = _plugin(strategy, "MASPlugin")
    for name, entries in state.items():
        if entries is None:
            setattr(plugin, name, None)
        else:
            setattr(plugin, name, {})
            _restore_param_data(getattr(plugin, name), entries)


def _save_lwf(strategy) -> dict:
    lwf = _plugin(strategy, "LwFPlugin").lwf
    return {"expcount": lwf.expcount,
            "prev_model": None if lwf.prev_model is None else lwf.prev_model.state_dict(),
            "prev_classes_by_task": {t: sorted(c) for t, c in lwf.prev_classes_by_task.items()}}


def _load_lwf(strategy, state: dict) -> None:
    lwf = _plugin(strategy, "LwFPlugin").lwf
    lwf.expcount = state["expcount"]
    if state["prev_model"] is None:
        lwf.prev_model = None
    else:  # the same architecture as the strategy's model, holding the old weights
        lwf.prev_model = copy.deepcopy(strategy.model)
        lwf.prev_model.load_state_dict(state["prev_model"])
    lwf.prev_classes_by_task.clear()
    for t, classes in state["prev_classes_by_task"].items():
        lwf.prev_classes_by_task[t] = set(classes)


# --- rehearsal and gradient memory ----------------------------------------------------

def _save_replay(strategy) -> dict:
    policy = _plugin(strategy, "ReplayPlugin").storage_policy
    return {"num_exps": policy._num_exps,
            "groups": {g: _reservoir_state(b) for g, b in policy.buffer_groups.items()}}


def _load_replay(strategy, state: dict) -> None:
    policy = _plugin(strategy, "ReplayPlugin").storage_policy
    policy._num_exps = state["num_exps"]
    policy.buffer_groups = {g: _reservoir(b) for g, b in state["groups"].items()}


def _class_balanced_state(policy) -> dict:
    return {"seen_classes": sorted(policy.seen_classes),
            "groups": {c: _reservoir_state(b) for c, b in policy.buffer_groups.items()}}


def _restore_class_balanced(policy, state: dict) -> None:
    policy.seen_classes = set(state["seen_classes"])
    policy.buffer_groups = {c: _reservoir(b) for c, b in state["groups"].items()}


def _save_er_ace(strategy) -> dict:
    """ER-ACE and DER keep their class-balanced buffer on the strategy itself."""
    return _class_balanced_state(strategy.storage_policy)


def _load_er_ace(strategy, state: dict) -> None:
    _restore_class_balanced(strategy.storage_policy, state)


def _save_gdumb(strategy) -> dict:
    plugin = _plugin(strategy, "GDumbPlugin")
    return {"buffer": _class_balanced_state(plugin.storage_policy),
            "init_model": None if plugin.init_model is None else plugin.init_model.state_dict()}


def _load_gdumb(strategy, state: dict) -> None:
    plugin = _plugin(strategy, "GDumbPlugin")
    _restore_class_balanced(plugin.storage_policy, state["buffer"])
    if state["init_model"] is None:
        plugin.init_model = None
    else:  # the initial weights every phase restarts from
        plugin.init_model = copy.deepcopy(strategy.model)
        plugin.init_model.load_state_dict(state["init_model"])


def _save_gem(strategy) -> dict:
    plugin = _plugin(strategy, "GEMPlugin")
    return {"memory_x": dict(plugin.memory_x), "memory_y": dict(plugin.memory_y),
            "memory_tid": dict(plugin.memory_tid), "G": plugin.G}


def _load_gem(strategy, state: dict) -> None:
    plugin = _plugin(strategy, "GEMPlugin")
    for name in ("memory_x", "memory_y", "memory_tid"):
        setattr(plugin, name, {t: v.clone() for t, v in state[name].items()})
    plugin.G = state["G"].clone()


def _save_agem(strategy) -> dict:
    plugin = _plugin(strategy, "AGEMPlugin")
    return {"buffers": [_dataset_state(buffer) for buffer in plugin.buffers]}


def _load_agem(strategy, state: dict) -> None:
    from avalanche.benchmarks.utils.data_loader import GroupBalancedInfiniteDataLoader

    plugin = _plugin(strategy, "AGEMPlugin")
    plugin.buffers = [_dataset(buffer) for buffer in state["buffers"]]
    if plugin.buffers:  # as AGEMPlugin.update_memory leaves it (its iterator draws lazily)
        plugin.buffer_dataloader = GroupBalancedInfiniteDataLoader(
            plugin.buffers, batch_size=plugin.sample_size // len(plugin.buffers),
            num_workers=0, pin_memory=False, persistent_workers=False)
        plugin.buffer_dliter = iter(plugin.buffer_dataloader)


EWC = Checkpointing(save=_save_ewc, load=_load_ewc)
SI = Checkpointing(save=_save_si, load=_load_si)
MAS = Checkpointing(save=_save_mas, load=_load_mas)
LWF = Checkpointing(save=_save_lwf, load=_load_lwf)
REPLAY = Checkpointing(save=_save_replay, load=_load_replay)
ER_ACE = Checkpointing(save=_save_er_ace, load=_load_er_ace)
DER = ER_ACE  # the same buffer layout; DER's samples carry their logits
GDUMB = Checkpointing(save=_save_gdumb, load=_load_gdumb)
GEM = Checkpointing(save=_save_gem, load=_load_gem)
AGEM = Checkpointing(save=_save_agem, load=_load_agem)
