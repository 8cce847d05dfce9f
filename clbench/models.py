"""The networks protocols name. The harness builds them; methods receive them."""

from __future__ import annotations

from torch import nn

from .protocol import ModelSpec


def build_model(spec: ModelSpec, input_size: int, n_classes: int) -> nn.Module:
    """An MLP: [Linear -> (BatchNorm) -> ReLU -> (Dropout)] per hidden layer, then a linear head.

    The head is a single shared `nn.Linear` with one output per class of the benchmark
    (one head for domain- and class-incremental scenarios alike).
    """
    layers: list[nn.Module] = []
    width = input_size
    for units in spec.hidden:
        layers.append(nn.Linear(width, units))
        if spec.batch_norm:
            layers.append(nn.BatchNorm1d(units))
        layers.append(nn.ReLU(inplace=True))
        if spec.dropout:
            layers.append(nn.Dropout(spec.dropout))
        width = units
    return MLP(nn.Sequential(*layers), nn.Linear(width, n_classes))


class MLP(nn.Module):
    """Feature extractor plus classifier head, kept apart so methods (LwF, iCaRL, DER) can reach both."""

    def __init__(self, features: nn.Module, classifier: nn.Linear):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(self.features(x.flatten(1)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
