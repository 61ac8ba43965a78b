"""A small U-Net (Ronneberger et al. 2015) for segmentation of 3x64x64 images.

Four resolution levels of widths ``w, 2w, 4w, 8w`` (``base_width`` w = 16 by default):

* encoder ``enc1`` (64x64), ``pool1``, ``enc2`` (32x32), ``pool2``, ``enc3`` (16x16), ``pool3``,
  ``bottleneck`` (8x8); 2x2 max-pools;
* decoder ``up3`` ConvTranspose2d(8w, 4w, 2, stride 2) -> ``torch.cat([enc3, up], 1)`` ->
  ``dec3``; ``up2`` ConvTranspose2d(4w, 2w, 2, stride 2) -> cat with ``enc2`` -> ``dec2``;
  ``F.interpolate`` (bilinear, x2) -> ``up1`` 1x1 conv (2w -> w) -> cat with ``enc1`` -> ``dec1``;
* ``head`` Conv2d(w, num_classes, 1) with bias: a per-pixel map of ``num_classes`` logits.

Each level is a :class:`DoubleConv` (``conv1`` 3x3 no bias, ``norm1``, ``act1``, ``conv2``,
``norm2``, ``act2``). The encoder uses BatchNorm2d + ReLU; the bottleneck and the decoder use
GroupNorm (4 groups) + PReLU with one learnable slope per channel, so the channel analysis meets
both kinds of layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DoubleConv", "UNet", "unet"]


class DoubleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, group_norm: bool = False,
                 groups: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = self._norm(out_channels, group_norm, groups)
        self.act1 = nn.PReLU(out_channels) if group_norm else nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = self._norm(out_channels, group_norm, groups)
        self.act2 = nn.PReLU(out_channels) if group_norm else nn.ReLU()

    @staticmethod
    def _norm(channels: int, group_norm: bool, groups: int) -> nn.Module:
        return nn.GroupNorm(groups, channels) if group_norm else nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(x)))


class UNet(nn.Module):
    def __init__(self, num_classes: int = 2, in_channels: int = 3, base_width: int = 16,
                 groups: int = 4) -> None:
        super().__init__()
        w1, w2, w3, w4 = base_width, 2 * base_width, 4 * base_width, 8 * base_width
        self.enc1 = DoubleConv(in_channels, w1)
        self.pool1 = nn.MaxPool2d(2)
        self.enc2 = DoubleConv(w1, w2)
        self.pool2 = nn.MaxPool2d(2)
        self.enc3 = DoubleConv(w2, w3)
        self.pool3 = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(w3, w4, group_norm=True, groups=groups)
        self.up3 = nn.ConvTranspose2d(w4, w3, kernel_size=2, stride=2)
        self.dec3 = DoubleConv(2 * w3, w3, group_norm=True, groups=groups)
        self.up2 = nn.ConvTranspose2d(w3, w2, kernel_size=2, stride=2)
        self.dec2 = DoubleConv(2 * w2, w2, group_norm=True, groups=groups)
        self.up1 = nn.Conv2d(w2, w1, kernel_size=1)
        self.dec1 = DoubleConv(2 * w1, w1, group_norm=True, groups=groups)
        self.head = nn.Conv2d(w1, num_classes, kernel_size=1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        e3 = self.enc3(self.pool2(e2))
        b = self.bottleneck(self.pool3(e3))
        d3 = self.dec3(torch.cat([e3, self.up3(b)], 1))
        d2 = self.dec2(torch.cat([e2, self.up2(d3)], 1))
        u1 = self.up1(F.interpolate(d2, scale_factor=2.0, mode="bilinear", align_corners=False))
        d1 = self.dec1(torch.cat([e1, u1], 1))
        return self.head(d1)


def unet(num_classes: int = 2, in_channels: int = 3, base_width: int = 16) -> UNet:
    return UNet(num_classes, in_channels, base_width)
