"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3-Small (Howard et al. 2019).

Module names and state_dict keys follow torchvision's layout: ``features.N`` (the stem and the
last 1x1 conv are ``ConvNormAct`` = Sequential(conv, bn, act), hence ``features.0.0.weight``),
inverted residual blocks hold their layers in ``conv`` (V2) or ``block`` (V3), and the head is
``classifier``. Squeeze-excitation (V3) is ``SqueezeExcitation`` with ``avgpool``/``fc1``/
``activation``/``fc2``/``scale_activation`` and gates the feature map with a ``mul``.

The helpers here (:func:`make_divisible`, :class:`ConvNormAct`, :class:`SqueezeExcitation`) are
shared by ``efficientnet.py`` and ``regnet.py``.

Activations are not in-place so hooks used by pruning criteria see the right tensors.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Optional, Sequence

import torch
from torch import nn

__all__ = ["make_divisible", "ConvNormAct", "SqueezeExcitation", "InvertedResidual",
           "MobileNetV2", "mobilenet_v2", "InvertedResidualV3", "MobileNetV3",
           "mobilenet_v3_small"]


def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` without going more than 10% down."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvNormAct(nn.Sequential):
    """Conv2d (``0``) + norm (``1``) + optional activation (``2``); 'same' padding.

    The conv has a bias only when there is no norm layer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, groups: int = 1,
                 norm_layer: Optional[Callable[[int], nn.Module]] = nn.BatchNorm2d,
                 activation_layer: Optional[Callable[[], nn.Module]] = nn.ReLU) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                      groups=groups, bias=norm_layer is None)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer())
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """Hu et al. 2018: ``x * gate(fc2(act(fc1(avgpool(x)))))`` with 1x1 convs as the FCs."""

    def __init__(self, input_channels: int, squeeze_channels: int,
                 activation: Callable[[], nn.Module] = nn.ReLU,
                 scale_activation: Callable[[], nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.avgpool(x)
        scale = self.activation(self.fc1(scale))
        scale = self.scale_activation(self.fc2(scale))
        return scale * x


def _init_mobile(model: nn.Module, linear: str = "normal") -> None:
    """torchvision's MobileNet init: conv kaiming-normal (fan_out), norms 1/0, linear
    N(0, 0.01) — or, with ``linear="uniform"``, U(±1/sqrt(out)) as for EfficientNet."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear == "uniform":
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
            else:
                nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- MobileNetV2

class InvertedResidual(nn.Module):
    """Expand 1x1 (skipped when ``expand_ratio == 1``) -> depthwise 3x3 -> linear 1x1 project.

    ``conv`` is a Sequential; the residual is added when ``stride == 1`` and ``inp == oup``
    (a plain bool fixed in ``__init__``).
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2, got {stride}")
        hidden = int(round(inp * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(inp, hidden, 1, activation_layer=nn.ReLU6))
        layers += [
            ConvNormAct(hidden, hidden, 3, stride, groups=hidden, activation_layer=nn.ReLU6),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


# (expansion t, channels c, repeats n, first stride s) -- Sandler et al. 2018, Table 2
_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0,
                 round_nearest: int = 8, dropout: float = 0.2,
                 setting: Sequence[Sequence[int]] = _V2_SETTING) -> None:
        super().__init__()
        input_channel = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvNormAct(3, input_channel, 3, 2,
                                                 activation_layer=nn.ReLU6)]
        for t, c, n, s in setting:
            out = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, out, s if i == 0 else 1, t))
                input_channel = out
        features.append(ConvNormAct(input_channel, self.last_channel, 1,
                                    activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(p=dropout),
                                        nn.Linear(self.last_channel, num_classes))
        _init_mobile(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(x)


def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0,
                 dropout: float = 0.2) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult, dropout=dropout)


# --------------------------------------------------------------------------- MobileNetV3

# (input, kernel, expanded, output, use_se, activation "RE"/"HS", stride) -- Howard et al.
# 2019, Table 2 (MobileNetV3-Small)
_V3_SMALL = (
    (16, 3, 16, 16, True, "RE", 2),
    (16, 3, 72, 24, False, "RE", 2),
    (24, 3, 88, 24, False, "RE", 1),
    (24, 5, 96, 40, True, "HS", 2),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1),
    (48, 5, 144, 48, True, "HS", 1),
    (48, 5, 288, 96, True, "HS", 2),
    (96, 5, 576, 96, True, "HS", 1),
    (96, 5, 576, 96, True, "HS", 1),
)

_V3_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


class InvertedResidualV3(nn.Module):
    """[expand 1x1] -> depthwise kxk -> [SE with hardsigmoid gate] -> linear 1x1, in ``block``."""

    def __init__(self, inp: int, kernel: int, expanded: int, oup: int, use_se: bool,
                 activation: str, stride: int) -> None:
        super().__init__()
        act = nn.Hardswish if activation == "HS" else nn.ReLU
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(ConvNormAct(inp, expanded, 1, norm_layer=_V3_NORM,
                                      activation_layer=act))
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded,
                                  norm_layer=_V3_NORM, activation_layer=act))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4, 8),
                                            scale_activation=nn.Hardsigmoid))
        layers.append(ConvNormAct(expanded, oup, 1, norm_layer=_V3_NORM, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = result + x
        return result


class MobileNetV3(nn.Module):
    def __init__(self, setting: Sequence[Sequence], last_channel: int,
                 num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        first = setting[0][0]
        layers: list[nn.Module] = [ConvNormAct(3, first, 3, 2, norm_layer=_V3_NORM,
                                               activation_layer=nn.Hardswish)]
        for cfg in setting:
            layers.append(InvertedResidualV3(*cfg))
        last_in = setting[-1][3]
        last_out = 6 * last_in
        layers.append(ConvNormAct(last_in, last_out, 1, norm_layer=_V3_NORM,
                                  activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(last_out, last_channel), nn.Hardswish(), nn.Dropout(p=dropout),
            nn.Linear(last_channel, num_classes))
        _init_mobile(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(x)


def mobilenet_v3_small(num_classes: int = 1000, dropout: float = 0.2) -> MobileNetV3:
    return MobileNetV3(_V3_SMALL, 1024, num_classes=num_classes, dropout=dropout)
