"""A compact GoogLeNet-style Inception network for CIFAR (3x32x32, 10 classes).

Modelled on GoogLeNet (Szegedy et al. 2015) with about half its widths and a CIFAR stem; the
5x5 branch is factorised into two 3x3 convs as in Inception-v2 (Szegedy et al. 2016).

Layout: ``stem`` = ConvBNReLU(3, 64, 3x3); ``inception3a``, ``inception3b``; ``maxpool3``
(3x3/2, 32 -> 16); ``inception4a``, ``inception4b``, ``inception4c``; ``maxpool4`` (16 -> 8);
``inception5a``, ``inception5b``; ``avgpool``; flatten; ``fc`` Linear(512, classes).

Every inception module concatenates (``torch.cat`` on dim 1) four branches, each conv being a
:class:`BasicConv2d` (``conv`` no bias, ``bn``, ``relu``):

* ``branch1``: 1x1
* ``branch2``: 1x1 reduce -> 3x3
* ``branch3``: 1x1 reduce -> 3x3 -> 3x3 (the factorised 5x5)
* ``branch4``: 3x3/1 max-pool -> 1x1 projection
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["BasicConv2d", "Inception", "InceptionCifar", "inception_cifar", "INCEPTION_CIFAR"]


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four-branch module; output width ``ch1x1 + ch3x3 + ch5x5 + pool_proj``."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, 1),
                                     BasicConv2d(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, 1),
                                     BasicConv2d(ch5x5red, ch5x5, 3),
                                     BasicConv2d(ch5x5, ch5x5, 3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
                                     BasicConv2d(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


# name -> (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5 (as 2 x 3x3), pool proj); "M" = 3x3/2 max-pool
INCEPTION_CIFAR: tuple = (
    ("inception3a", (32, 48, 64, 8, 16, 16)),      # -> 128
    ("inception3b", (64, 64, 96, 16, 48, 32)),     # -> 240
    "maxpool3",
    ("inception4a", (96, 48, 104, 8, 24, 32)),     # -> 256
    ("inception4b", (80, 56, 112, 12, 32, 32)),    # -> 256
    ("inception4c", (128, 80, 160, 16, 64, 64)),   # -> 416
    "maxpool4",
    ("inception5a", (128, 80, 160, 16, 64, 64)),   # -> 416
    ("inception5b", (192, 96, 192, 24, 64, 64)),   # -> 512
)


class InceptionCifar(nn.Module):
    def __init__(self, cfg: Sequence = INCEPTION_CIFAR, num_classes: int = 10,
                 stem_width: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = BasicConv2d(in_channels, stem_width, 3)
        plan: list[str] = []
        width = stem_width
        for item in cfg:
            if isinstance(item, str):
                setattr(self, item, nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
                plan.append(item)
            else:
                name, widths = item
                block = Inception(width, *widths)
                setattr(self, name, block)
                plan.append(name)
                width = block.out_channels
        self._plan = tuple(plan)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in self._plan:
            x = getattr(self, name)(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def inception_cifar(num_classes: int = 10) -> InceptionCifar:
    return InceptionCifar(INCEPTION_CIFAR, num_classes=num_classes)
