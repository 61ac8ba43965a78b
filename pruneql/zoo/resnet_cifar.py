"""He et al. 2016's CIFAR ResNets (depth = 6n + 2) with option-A shortcuts.

Layout: ``conv1`` (3 -> 16, 3x3) + ``bn1`` + ReLU; ``layer1``/``layer2``/``layer3`` each hold n
BasicBlocks of 16/32/64 planes (stride 2 in the first block of layers 2 and 3); ``avgpool``
(AdaptiveAvgPool2d(1)); flatten; ``fc`` Linear(64, classes).

Option A (as in Li et al. 2017): the shortcut is the identity, and at a stage change it is a
strided subsample ``x[:, :, ::2, ::2]`` zero-padded on the channel dimension by ``planes // 4``
on each side. It has no parameters and no projection convs. The pad and stride are plain ints
computed in ``__init__`` so ``torch.fx`` records them as constants.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OptionAShortcut", "CifarBasicBlock", "CifarResNet", "resnet_cifar",
           "resnet56_cifar", "resnet110_cifar"]


class OptionAShortcut(nn.Module):
    """Parameter-free shortcut: subsample spatially by ``stride``, zero-pad ``pad`` channels
    before and after. Output channels ``0 .. pad-1`` and the last ``pad`` are exactly zero."""

    def __init__(self, pad: int, stride: int = 2) -> None:
        super().__init__()
        self.pad: int = int(pad)
        self.stride: int = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        return F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, self.pad, self.pad))

    def extra_repr(self) -> str:
        return f"pad={self.pad}, stride={self.stride}"


class CifarBasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU.

    ``shortcut`` is ``None`` for the identity (checked on a constant attribute in forward), or
    an :class:`OptionAShortcut` when the block changes resolution/width.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: Optional[OptionAShortcut] = None
        if stride != 1 or in_planes != planes:
            pad = planes // 4
            if in_planes + 2 * pad != planes:
                raise ValueError(
                    f"option-A shortcut needs planes == 2 * in_planes, got {in_planes} -> {planes}")
            self.shortcut = OptionAShortcut(pad=pad, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class CifarResNet(nn.Module):
    """CIFAR ResNet with three stages of ``blocks_per_stage`` basic blocks."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10,
                 widths: tuple[int, int, int] = (16, 32, 64), in_channels: int = 3) -> None:
        super().__init__()
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage}")
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        stages = []
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks = []
            for b in range(blocks_per_stage):
                blocks.append(CifarBasicBlock(in_planes, planes, stride if b == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet_cifar(depth: int, num_classes: int = 10) -> CifarResNet:
    """CIFAR ResNet of ``depth`` = 6n + 2 layers (20, 32, 44, 56, 110, ...)."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth!r}")
    return CifarResNet((depth - 2) // 6, num_classes=num_classes)


def resnet56_cifar(num_classes: int = 10) -> CifarResNet:
    return resnet_cifar(56, num_classes)


def resnet110_cifar(num_classes: int = 10) -> CifarResNet:
    return resnet_cifar(110, num_classes)
