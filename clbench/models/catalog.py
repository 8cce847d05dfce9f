"""The architectures a protocol can name, and their parameter counts, without torch.

Protocol validation and `clbench protocols` need a network's size before anything is
built (and without importing torch), so each architecture's count is computed here from
its layer shapes; tests/test_models.py checks every formula against the built network.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Architecture name -> (one-line description, its reference).
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "mlp": ("fully connected: [Linear -> (BatchNorm) -> ReLU -> (Dropout)] per model.hidden layer; "
            "flattens its input", "clbench's MLP family"),
    "resnet18-reduced": ("ResNet-18 with 20 base filters (3x3 stem, no max-pool; 160 features)",
                         "Lopez-Paz & Ranzato 2017 (GEM), Chaudhry et al. 2019 (A-GEM, ER); "
                         "Buzzega et al. 2020 (DER, Mammoth)"),
    "resnet18": ("ResNet-18, CIFAR stem: 3x3 conv, no max-pool, 64 base filters (512 features)",
                 "He et al. 2016; the CIFAR variant of Mammoth's seq-cifar100 / seq-tinyimg"),
    "resnet32": ("ResNet-32 for CIFAR: 3 stages of 5 basic blocks, 16/32/64 filters, "
                 "parameter-free (option A) shortcuts (64 features)",
                 "He et al. 2016; iCaRL (Rebuffi et al. 2017) and PyCIL's resnet32"),
}

#: Base filters of the ResNet-18 variants.
RESNET18_WIDTH = {"resnet18-reduced": 20, "resnet18": 64}


@dataclass(frozen=True)
class NetworkSize:
    """A network's trunk ('features'), feature width and head parameters."""

    features: int
    feature_dim: int
    heads: int

    @property
    def total(self) -> int:
        return self.features + self.heads


def _basic_block(inplanes: int, planes: int, stride: int, projection: bool) -> int:
    """Two 3x3 convolutions (no bias) with BatchNorm, plus a 1x1 projection shortcut if any."""
    size = 9 * inplanes * planes + 2 * planes + 9 * planes * planes + 2 * planes
    if projection and (stride != 1 or inplanes != planes):
        size += inplanes * planes + 2 * planes
    return size


def _resnet18(channels: int, width: int) -> tuple[int, int]:
    size = 9 * channels * width + 2 * width
    inplanes = width
    for planes, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
        for block_stride in (stride, 1):
            size += _basic_block(inplanes, planes, block_stride, projection=True)
            inplanes = planes
    return size, 8 * width


def _resnet32(channels: int) -> tuple[int, int]:
    size = 9 * channels * 16 + 2 * 16
    inplanes = 16
    for planes, stride in ((16, 1), (32, 2), (64, 2)):
        for block in range(5):
            size += _basic_block(inplanes, planes, stride if block == 0 else 1, projection=False)
            inplanes = planes
    return size, 64


def _mlp(input_size: int, hidden: tuple[int, ...], batch_norm: bool) -> tuple[int, int]:
    size, width = 0, input_size
    for units in hidden:
        size += width * units + units + (2 * units if batch_norm else 0)
        width = units
    return size, width


def network_size(architecture: str, input_shape: tuple[int, ...], hidden: tuple[int, ...],
                 batch_norm: bool, n_heads: int, head_classes: int) -> NetworkSize:
    """Parameters of the network `clbench.models.build_model` builds for these settings."""
    if architecture == "mlp":
        size = 1
        for dim in input_shape:
            size *= dim
        features, dim = _mlp(size, tuple(hidden), batch_norm)
    elif architecture in RESNET18_WIDTH:
        features, dim = _resnet18(input_shape[0], RESNET18_WIDTH[architecture])
    elif architecture == "resnet32":
        features, dim = _resnet32(input_shape[0])
    else:
        raise ValueError(f"unknown architecture '{architecture}'")
    return NetworkSize(features, dim, n_heads * (dim * head_classes + head_classes))
