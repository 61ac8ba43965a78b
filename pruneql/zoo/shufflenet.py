"""ShuffleNetV2 1.0x (Ma et al. 2018).

State_dict keys follow torchvision: ``conv1`` = Sequential(conv 3x3/2, BN, ReLU), ``maxpool``,
``stage2``/``stage3``/``stage4`` (Sequentials of 4/8/4 :class:`ShuffleUnit`, widths
116/232/464), ``conv5`` = Sequential(conv 1x1, BN, ReLU) to 1024, global mean, ``fc``.

A unit with stride 1 splits its input in two halves along the channels (``chunk``), keeps the
first and sends the second through ``branch2`` (1x1-BN-ReLU, depthwise 3x3-BN, 1x1-BN-ReLU); a
stride-2 unit sends the whole input through both ``branch1`` (depthwise 3x3/2-BN, 1x1-BN-ReLU)
and ``branch2``. The halves are concatenated and channel-shuffled with 2 groups:
``view(N, 2, C/2, H, W)`` -> ``transpose(1, 2)`` -> ``view(N, C, H, W)``. Channel counts in the
views are plain ints fixed in ``__init__``; batch and spatial sizes come from ``x.size()``.
Default PyTorch init, as in torchvision.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["channel_shuffle", "ShuffleUnit", "ShuffleNetV2", "shufflenet_v2_x1_0"]


def channel_shuffle(x: torch.Tensor, groups: int, channels: int) -> torch.Tensor:
    """Interleave ``groups`` equal channel groups of ``x`` (which has ``channels`` channels)."""
    n, h, w = x.size(0), x.size(2), x.size(3)
    x = x.view(n, groups, channels // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, channels, h, w)


def _depthwise(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, 1, bias=False, groups=channels)


class ShuffleUnit(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"illegal stride value {stride}")
        branch = oup // 2
        if stride == 1 and inp != branch * 2:
            raise ValueError("a stride-1 unit needs inp == oup (even)")
        self.stride = stride
        self.out_channels = 2 * branch
        if stride > 1:
            self.branch1 = nn.Sequential(
                _depthwise(inp, stride), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch, 1, 1, 0, bias=False), nn.BatchNorm2d(branch), nn.ReLU())
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch, branch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch), nn.ReLU(),
            _depthwise(branch, stride), nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, 1, 0, bias=False), nn.BatchNorm2d(branch), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            halves = x.chunk(2, dim=1)
            out = torch.cat((halves[0], self.branch2(halves[1])), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2, self.out_channels)


class ShuffleNetV2(nn.Module):
    def __init__(self, stages_repeats: Sequence[int] = (4, 8, 4),
                 stages_out_channels: Sequence[int] = (24, 116, 232, 464, 1024),
                 num_classes: int = 1000) -> None:
        super().__init__()
        if len(stages_repeats) != 3 or len(stages_out_channels) != 5:
            raise ValueError("expected 3 stage repeats and 5 stage widths")
        c = stages_out_channels[0]
        self.conv1 = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c),
                                   nn.ReLU())
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (repeats, out) in enumerate(zip(stages_repeats, stages_out_channels[1:4]), 2):
            units = [ShuffleUnit(c, out, 2)] + [ShuffleUnit(out, out, 1)
                                                 for _ in range(repeats - 1)]
            setattr(self, f"stage{i}", nn.Sequential(*units))
            c = out
        last = stages_out_channels[-1]
        self.conv5 = nn.Sequential(nn.Conv2d(c, last, 1, 1, 0, bias=False),
                                   nn.BatchNorm2d(last), nn.ReLU())
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        x = self.conv5(x)
        x = x.mean([2, 3])
        return self.fc(x)


def shufflenet_v2_x1_0(num_classes: int = 1000) -> ShuffleNetV2:
    return ShuffleNetV2((4, 8, 4), (24, 116, 232, 464, 1024), num_classes)
