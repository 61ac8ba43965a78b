"""ConvNeXt-T (Liu et al. 2022), in the layout of the authors' reference implementation.

State_dict keys follow the reference (facebookresearch/ConvNeXt) so its checkpoints load:
``downsample_layers.0`` = Sequential(Conv2d(3, 96, 4, stride 4), LayerNorm2d) is the stem;
``downsample_layers.1..3`` = Sequential(LayerNorm2d, Conv2d(k 2, stride 2)); ``stages.0..3``
hold 3/3/9/3 :class:`Block` at widths 96/192/384/768; ``norm`` is a LayerNorm over the pooled
(N, C) features and ``head`` the classifier Linear.

A block is depthwise 7x7 conv (``dwconv``) -> ``permute(0, 2, 3, 1)`` -> ``norm`` (LayerNorm
over the last, channel, dim) -> ``pwconv1`` Linear(C, 4C) -> GELU -> ``pwconv2`` Linear(4C, C)
-> ``gamma * x`` (layer scale: an ``nn.Parameter`` of shape (C,), a ``get_attr`` node in fx,
initialised to 1e-6) -> ``permute(0, 3, 1, 2)`` -> residual add. Stochastic depth (drop path)
is omitted: it is the identity in eval mode.

:class:`LayerNorm2d` normalises an NCHW tensor over its channels: it is an ``nn.LayerNorm``
whose forward permutes to channels-last, calls ``F.layer_norm`` with its own weight and bias,
and permutes back (fx traces through it: permute -> layer_norm(get_attr weight, bias) ->
permute).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LayerNorm2d", "Block", "ConvNeXt", "convnext_tiny"]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over dim 1 of an (N, C, H, W) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, dim: int, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        x = self.gamma * x
        x = x.permute(0, 3, 1, 2)
        return shortcut + x


class ConvNeXt(nn.Module):
    def __init__(self, depths: Sequence[int] = (3, 3, 9, 3),
                 dims: Sequence[int] = (96, 192, 384, 768), num_classes: int = 1000,
                 in_channels: int = 3, layer_scale_init_value: float = 1e-6,
                 head_init_scale: float = 1.0) -> None:
        super().__init__()
        if len(depths) != len(dims):
            raise ValueError("depths and dims must have the same length")
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(
            nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4),
            LayerNorm2d(dims[0], eps=1e-6)))
        for i in range(len(dims) - 1):
            self.downsample_layers.append(nn.Sequential(
                LayerNorm2d(dims[i], eps=1e-6),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2)))
        self.stages = nn.ModuleList(
            nn.Sequential(*[Block(d, layer_scale_init_value) for _ in range(n)])
            for n, d in zip(depths, dims))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.head.weight.mul_(head_init_scale)
            self.head.bias.mul_(head_init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        x = self.norm(x.mean([-2, -1]))
        return self.head(x)


def convnext_tiny(num_classes: int = 1000, layer_scale_init_value: float = 1e-6) -> ConvNeXt:
    return ConvNeXt((3, 3, 9, 3), (96, 192, 384, 768), num_classes,
                    layer_scale_init_value=layer_scale_init_value)
