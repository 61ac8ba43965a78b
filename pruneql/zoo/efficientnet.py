"""EfficientNet-B0 (Tan & Le 2019).

Layout (torchvision's state_dict keys): ``features.0`` stem ConvNormAct(3, 32, 3x3, stride 2,
SiLU); ``features.1`` ... ``features.7`` the seven MBConv stages (Sequentials of
:class:`MBConv`); ``features.8`` ConvNormAct(320, 1280, 1x1, SiLU); ``avgpool``; ``classifier``
= Sequential(Dropout(0.2), Linear(1280, classes)).

MBConv: [expand 1x1 + BN + SiLU] -> depthwise kxk + BN + SiLU -> squeeze-excitation
(squeeze width ``max(1, in // 4)``, SiLU, sigmoid gate, ``mul``) -> project 1x1 + BN, all in
``block``; residual when stride 1 and in == out. Stochastic depth is omitted: it is the identity
in eval mode, which is how zoo models are returned and traced.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .mobilenet import ConvNormAct, SqueezeExcitation, _init_mobile, make_divisible

__all__ = ["MBConv", "EfficientNet", "efficientnet_b0"]


class MBConv(nn.Module):
    def __init__(self, expand_ratio: int, kernel: int, stride: int, inp: int, oup: int) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and inp == oup
        expanded = make_divisible(inp * expand_ratio, 8)
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(ConvNormAct(inp, expanded, 1, activation_layer=nn.SiLU))
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded,
                                  activation_layer=nn.SiLU))
        layers.append(SqueezeExcitation(expanded, max(1, inp // 4), activation=nn.SiLU))
        layers.append(ConvNormAct(expanded, oup, 1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = result + x
        return result


# (expand ratio, kernel, stride, in, out, layers) -- Tan & Le 2019, Table 1
_B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
       (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
       (6, 3, 1, 192, 320, 1))


class EfficientNet(nn.Module):
    def __init__(self, setting: Sequence[Sequence[int]] = _B0, num_classes: int = 1000,
                 dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormAct(3, setting[0][3], 3, 2, activation_layer=nn.SiLU)]
        for t, k, s, inp, oup, n in setting:
            stage = [MBConv(t, k, s if i == 0 else 1, inp if i == 0 else oup, oup)
                     for i in range(n)]
            layers.append(nn.Sequential(*stage))
        last_in = setting[-1][4]
        last_out = 4 * last_in
        layers.append(ConvNormAct(last_in, last_out, 1, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_out, num_classes))
        _init_mobile(self, linear="uniform")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(x)


def efficientnet_b0(num_classes: int = 1000, dropout: float = 0.2) -> EfficientNet:
    return EfficientNet(_B0, num_classes=num_classes, dropout=dropout)
