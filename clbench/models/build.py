"""`build_model`: the network a protocol names, built the same way in every process."""

from __future__ import annotations

from torch import nn

from ..protocol import BenchmarkSpec, ModelSpec
from .mlp import MLP, mlp_features
from .resnet import ConvNet, resnet18, resnet32
from .catalog import RESNET18_WIDTH


def build_model(spec: ModelSpec, benchmark: BenchmarkSpec | int, n_classes: int | None = None) -> nn.Module:
    """The protocol's network: `build_model(protocol.model, protocol.benchmark)`.

    Single-headed for domain- and class-incremental protocols (one output per label the
    scenario uses); a `MultiHeadNetwork` with one head per task for task-incremental ones.
    `build_model(spec, input_size, n_classes)` (an int) builds a single-headed MLP on
    flat rows, as before scenarios and image shapes existed.
    """
    if isinstance(benchmark, int):
        if spec.architecture != "mlp" or n_classes is None:
            raise ValueError("build_model(spec, input_size, n_classes) builds MLPs only")
        shape, heads, outputs = (benchmark,), 1, n_classes
    else:
        shape, heads, outputs = benchmark.input_shape, benchmark.n_heads, benchmark.output_classes
    features, dim = _trunk(spec, shape)
    if heads == 1:
        classifier = nn.Linear(dim, outputs)
        return MLP(features, classifier) if spec.architecture == "mlp" else ConvNet(features, classifier)
    from .heads import MultiHeadNetwork, TaskHeads  # imports Avalanche

    return MultiHeadNetwork(features, TaskHeads(dim, heads, outputs), flatten=spec.architecture == "mlp")


def _trunk(spec: ModelSpec, shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    if spec.architecture == "mlp":
        size = 1
        for dim in shape:
            size *= dim
        return mlp_features(size, spec.hidden, spec.batch_norm, spec.dropout), (spec.hidden[-1])
    if len(shape) != 3:
        raise ValueError(f"{spec.architecture} needs C x H x W images, not inputs of shape {shape}")
    if spec.architecture in RESNET18_WIDTH:
        trunk = resnet18(shape[0], RESNET18_WIDTH[spec.architecture])
    elif spec.architecture == "resnet32":
        trunk = resnet32(shape[0])
    else:
        raise ValueError(f"unknown architecture '{spec.architecture}'")
    return trunk, trunk.out_features


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def place(model: nn.Module, spec: ModelSpec, device) -> nn.Module:
    """`model` on `device`; convolutional networks in channels-last layout on CUDA, which
    lets cuDNN use its faster NHWC kernels (tensor cores under bf16/fp16)."""
    import torch

    model = model.to(device)
    if spec.architecture != "mlp" and torch.device(device).type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
