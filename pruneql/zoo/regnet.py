"""RegNetY-400MF (Radosavovic et al. 2020), torchvision layout.

``stem`` = ConvNormAct(3, 32, 3x3/2, BN, ReLU); ``trunk_output`` = Sequential(``block1`` ...
``block4``), stage ``i`` holding blocks ``block{i}-{j}``; ``avgpool``; flatten; ``fc``.

Each block (:class:`ResBottleneckBlock`) computes ``relu(proj(x) + f(x))`` (``proj`` = 1x1 conv
+ BN, present when the width or the stride changes, else the identity), where ``f`` =
Sequential(``a`` 1x1 conv-BN-ReLU, ``b`` grouped 3x3 conv-BN-ReLU carrying the stride,
``se`` squeeze-excitation (squeeze width ``round(0.25 * block input width)``, ReLU, sigmoid
gate, ``mul``), ``c`` 1x1 conv-BN). Bottleneck ratio 1, group width 8.

The stage widths/depths come from the quantised linear rule of the paper
(:func:`regnet_stages`): for RegNetY-400MF (depth 16, w0 48, wa 27.89, wm 2.09, group width 8)
they are 48/104/208/440 and 1/3/6/6.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from .mobilenet import ConvNormAct, SqueezeExcitation

__all__ = ["regnet_stages", "BottleneckTransform", "ResBottleneckBlock", "RegNet",
           "regnety_400mf"]


def regnet_stages(depth: int, w_0: float, w_a: float, w_m: float, group_width: int,
                  quant: int = 8) -> list[tuple[int, int, int]]:
    """``[(width, depth, group_width), ...]`` per stage from RegNet's design-space rule.

    Block ``j`` gets width ``w_0 * w_m ** round(log(u_j / w_0) / log(w_m))`` with
    ``u_j = w_0 + w_a * j``, quantised to a multiple of ``quant``; runs of equal widths form the
    stages; widths are then made divisible by their (capped) group width.
    """
    if w_a < 0 or w_0 <= 0 or w_m <= 1 or w_0 % quant != 0:
        raise ValueError("invalid RegNet parameters")
    widths = []
    for j in range(depth):
        u = w_0 + w_a * j
        s = round(math.log(u / w_0) / math.log(w_m))
        widths.append(int(round(w_0 * w_m ** s / quant) * quant))
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, d in stages:
        g = min(group_width, w)
        out.append((int(round(w / g) * g), d, g))
    return out


class BottleneckTransform(nn.Sequential):
    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int,
                 bottleneck_multiplier: float = 1.0, se_ratio: float = 0.25) -> None:
        w_b = int(round(width_out * bottleneck_multiplier))
        g = w_b // group_width
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["a"] = ConvNormAct(width_in, w_b, 1)
        layers["b"] = ConvNormAct(w_b, w_b, 3, stride, groups=g)
        if se_ratio:
            layers["se"] = SqueezeExcitation(w_b, int(round(se_ratio * width_in)))
        layers["c"] = ConvNormAct(w_b, width_out, 1, activation_layer=None)
        super().__init__(layers)


class ResBottleneckBlock(nn.Module):
    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int,
                 bottleneck_multiplier: float = 1.0, se_ratio: float = 0.25) -> None:
        super().__init__()
        self.proj = None
        if width_in != width_out or stride != 1:
            self.proj = ConvNormAct(width_in, width_out, 1, stride, activation_layer=None)
        self.f = BottleneckTransform(width_in, width_out, stride, group_width,
                                     bottleneck_multiplier, se_ratio)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            x = self.proj(x) + self.f(x)
        else:
            x = x + self.f(x)
        return self.activation(x)


class RegNet(nn.Module):
    def __init__(self, stages: list[tuple[int, int, int]], stem_width: int = 32,
                 num_classes: int = 1000, se_ratio: float = 0.25,
                 bottleneck_multiplier: float = 1.0) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, stem_width, 3, 2)
        width = stem_width
        trunk: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (w, d, g) in enumerate(stages, 1):
            stage = nn.Sequential()
            for j in range(d):
                stage.add_module(f"block{i}-{j}", ResBottleneckBlock(
                    width if j == 0 else w, w, 2 if j == 0 else 1, g,
                    bottleneck_multiplier, se_ratio))
            trunk[f"block{i}"] = stage
            width = w
        self.trunk_output = nn.Sequential(trunk)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk_output(self.stem(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def regnety_400mf(num_classes: int = 1000) -> RegNet:
    stages = regnet_stages(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8)
    return RegNet(stages, 32, num_classes, se_ratio=0.25)
