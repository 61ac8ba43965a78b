"""ResNeXt-50 32x4d (Xie et al. 2017): ResNet-50 v1.5 with grouped 3x3 convs.

Built from :class:`~pruneql.zoo.resnet.ResNet` with ``groups=32`` and ``width_per_group=4``:
bottleneck widths 128/256/512/1024 (``planes * 4 / 64 * 32``), the 3x3 conv (``conv2``) of every
block has 32 groups and carries the stride. Module names and state_dict keys are torchvision's.
"""
from __future__ import annotations

from .resnet import Bottleneck, ResNet

__all__ = ["resnext50_32x4d"]


def resnext50_32x4d(num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, zero_init_residual,
                  groups=32, width_per_group=4)
