"""The networks protocols name. The harness builds them; methods receive them.

- `catalog`: the architectures and their parameter counts (no torch: protocol validation
  and `clbench protocols` use it);
- `mlp`, `resnet`: the MLP family and the ResNet backbones, each a `features` trunk plus a
  linear `classifier` (LwF, iCaRL and DER reach both);
- `heads`: the multi-head network of task-incremental protocols (imports Avalanche);
- `build`: `build_model(protocol.model, protocol.benchmark)`.

`build_model`, `MLP`, `count_parameters` and the other torch-based names are imported on
first use, so importing the catalog stays cheap.
"""

from __future__ import annotations

from .catalog import ARCHITECTURES, NetworkSize, network_size

_LAZY = {
    "build_model": "build", "count_parameters": "build",
    "MLP": "mlp", "mlp_features": "mlp",
    "ConvNet": "resnet", "resnet18": "resnet", "resnet32": "resnet",
    "MultiHeadNetwork": "heads", "TaskHeads": "heads",
}

__all__ = ["ARCHITECTURES", "NetworkSize", "network_size", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
