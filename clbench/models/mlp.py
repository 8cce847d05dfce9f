"""The MLP family: fully connected layers on flattened inputs."""

from __future__ import annotations

from torch import nn


class FlatSequential(nn.Sequential):
    """An `nn.Sequential` that flattens its input to rows first.

    The trunk flattens itself, not just `MLP.forward`, because methods call `model.features`
    directly (iCaRL's class means, LwF), on C x H x W images. The layer indices, hence the
    state_dict keys, are those of a plain Sequential.
    """

    def forward(self, x):
        return super().forward(x.flatten(1))


def mlp_features(input_size: int, hidden: tuple[int, ...], batch_norm: bool, dropout: float) -> nn.Sequential:
    """[Linear -> (BatchNorm) -> ReLU -> (Dropout)] per hidden layer (the MLP's trunk)."""
    layers: list[nn.Module] = []
    width = input_size
    for units in hidden:
        layers.append(nn.Linear(width, units))
        if batch_norm:
            layers.append(nn.BatchNorm1d(units))
        layers.append(nn.ReLU(inplace=True))
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = units
    return FlatSequential(*layers)


class MLP(nn.Module):
    """Feature extractor plus classifier head, kept apart so methods (LwF, iCaRL, DER) can reach both.

    Inputs of any shape are flattened to rows first (images arrive as C x H x W).
    """

    def __init__(self, features: nn.Module, classifier: nn.Linear):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(self.features(x))
