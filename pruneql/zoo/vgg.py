"""CIFAR VGG as used by Li et al. 2017 ("Pruning Filters for Efficient ConvNets").

Layout of ``vgg16_cifar``: 13 conv3x3 (padding 1, no bias), each followed by BatchNorm2d and
ReLU; 2x2 max-pool after conv2, conv4, conv7, conv10 and conv13 (32 -> 16 -> 8 -> 4 -> 2 -> 1);
flatten; ``fc1`` Linear(512, 512) + ``bn14`` BatchNorm1d(512) + ReLU + ``fc2`` Linear(512, classes).
No dropout.

Every layer lives at the root of the module so recipes address them by their paper names
(``conv1`` ... ``conv13``, ``bn1`` ... ``bn13``, ``fc1``, ``bn14``, ``fc2``, ``pool1`` ... ``pool5``).
The forward pass walks a tuple of names fixed in ``__init__``; ``torch.fx`` unrolls it.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VGGCifar", "VGG_CIFAR_CONFIGS", "vgg16_cifar"]

# An int is a conv3x3 of that width, "M" a 2x2 max-pool.
VGG_CIFAR_CONFIGS: dict[str, tuple[Union[int, str], ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512, "M"),
}


class VGGCifar(nn.Module):
    """Plain VGG for 32x32 inputs with a BN'd two-layer classifier.

    ``cfg``: ints are conv widths, ``"M"`` is a 2x2 max-pool. Convs are named ``conv{i}`` with
    BatchNorm ``bn{i}`` (1-based, in order); pools ``pool{j}``. The classifier is
    ``fc1`` -> ``bn{n_conv + 1}`` (BatchNorm1d) -> ReLU -> ``fc2``. The flattened feature size is
    ``last_width * final_spatial**2`` where ``final_spatial`` follows from ``input_size``.
    """

    def __init__(self, cfg: Sequence[Union[int, str]], num_classes: int = 10,
                 in_channels: int = 3, input_size: int = 32, hidden: int = 512) -> None:
        super().__init__()
        plan: list[str] = []
        width = in_channels
        spatial = input_size
        n_conv = n_pool = 0
        for item in cfg:
            if item == "M":
                n_pool += 1
                name = f"pool{n_pool}"
                setattr(self, name, nn.MaxPool2d(kernel_size=2, stride=2))
                spatial //= 2
                plan.append(name)
            else:
                out = int(item)
                n_conv += 1
                setattr(self, f"conv{n_conv}",
                        nn.Conv2d(width, out, kernel_size=3, padding=1, bias=False))
                setattr(self, f"bn{n_conv}", nn.BatchNorm2d(out))
                plan.append(f"conv{n_conv}")
                width = out
        if spatial < 1:
            raise ValueError(f"input_size {input_size} is too small for {n_pool} pools")
        self.num_convs: int = n_conv
        # Names are resolved in forward via getattr on constants: fx-traceable.
        self._plan: tuple[str, ...] = tuple(plan)
        self._head_bn: str = f"bn{n_conv + 1}"
        self.fc1 = nn.Linear(width * spatial * spatial, hidden)
        setattr(self, self._head_bn, nn.BatchNorm1d(hidden))
        self.fc2 = nn.Linear(hidden, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._plan:
            if name.startswith("pool"):
                x = getattr(self, name)(x)
            else:
                bn = getattr(self, "bn" + name[len("conv"):])
                x = F.relu(bn(getattr(self, name)(x)))
        x = torch.flatten(x, 1)
        x = F.relu(getattr(self, self._head_bn)(self.fc1(x)))
        return self.fc2(x)


def vgg16_cifar(num_classes: int = 10) -> VGGCifar:
    """Li et al. 2017's CIFAR VGG-16 (13 conv + 2 FC, BN everywhere, no dropout)."""
    return VGGCifar(VGG_CIFAR_CONFIGS["vgg16"], num_classes=num_classes)
