"""ResNet backbones for 32x32 and 64x64 images (CIFAR-style stem: 3x3 conv, no max-pool).

- `resnet18(width)`: ResNet-18 with projection (1x1 conv + BatchNorm) shortcuts, as in
  GEM / A-GEM / Mammoth (`width=20`, the *reduced* ResNet-18) and the common CIFAR
  ResNet-18 (`width=64`); PyTorch's default initialisation, as theirs.
- `resnet32()`: the CIFAR ResNet-32 of He et al. with parameter-free shortcuts (option A:
  stride-2 subsampling and zero channels), initialised as PyCIL's `cifar_resnet.py`.

Each trunk ends in global average pooling, so it takes any image size (MNIST's 28x28
too) and returns one feature row per image; `ConvNet` adds the linear classifier.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm; `shortcut`: 'projection' or 'zero-pad' (option A)."""

    def __init__(self, inplanes: int, planes: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.extra = stride, planes - inplanes
        self.shortcut: nn.Module | None = None
        if shortcut == "projection" and (stride != 1 or inplanes != planes):
            self.shortcut = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))
        self.zero_pad = shortcut == "zero-pad"

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            identity = self.shortcut(x)
        elif self.zero_pad and (self.stride != 1 or self.extra):
            identity = x[:, :, ::self.stride, ::self.stride]
            identity = torch.cat([identity, identity.new_zeros(
                identity.shape[0], self.extra, *identity.shape[2:])], dim=1)
        else:
            identity = x
        return F.relu(out + identity)


class Trunk(nn.Module):
    """Stem, stages of basic blocks, global average pooling: images -> feature rows."""

    def __init__(self, channels: int, stages: list[tuple[int, int, int]], shortcut: str, stem: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, stem, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        blocks, inplanes = [], stem
        for planes, n_blocks, stride in stages:
            layer = []
            for i in range(n_blocks):
                layer.append(BasicBlock(inplanes, planes, stride if i == 0 else 1, shortcut))
                inplanes = planes
            blocks.append(nn.Sequential(*layer))
        self.layers = nn.Sequential(*blocks)
        self.out_features = inplanes

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


class ConvNet(nn.Module):
    """A convolutional trunk (`features`) plus a linear `classifier`, as the MLP."""

    def __init__(self, features: Trunk, classifier: nn.Linear):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(self.features(x))


def resnet18(channels: int, width: int) -> Trunk:
    stages = [(width, 2, 1), (2 * width, 2, 2), (4 * width, 2, 2), (8 * width, 2, 2)]
    return Trunk(channels, stages, "projection", stem=width)


def resnet32(channels: int) -> Trunk:
    trunk = Trunk(channels, [(16, 5, 1), (32, 5, 2), (64, 5, 2)], "zero-pad", stem=16)
    for module in trunk.modules():  # PyCIL's cifar_resnet.py initialisation
        if isinstance(module, nn.Conv2d):
            n = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            module.weight.data.normal_(0, math.sqrt(2.0 / n))
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.data.fill_(1)
            module.bias.data.zero_()
    return trunk
