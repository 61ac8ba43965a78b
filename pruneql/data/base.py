"""What a source hands back before it is split and batched.

In-memory sources (digits, npz, cifar10, imagefolder) return :class:`Tensors`; the
``python`` source returns :class:`Parts` (user Datasets or DataLoaders).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import default_collate


class Normalise:
    """A collate function that turns uint8 image batches into float32 as they are drawn.

    Images stay uint8 in memory (CIFAR-10 as float32 would be 4x larger, per rank):
    ``x / scale``, then ``(x - mean) / std`` per channel when ``mean`` is given.

    >>> batch = [(torch.tensor([[[16]]], dtype=torch.uint8), torch.tensor(3))]
    >>> x, y = Normalise(16)(batch)
    >>> x.dtype, x.item(), y.tolist()
    (torch.float32, 1.0, [3])
    """

    def __init__(self, scale: float, mean: tuple | None = None, std: tuple | None = None):
        self.scale = float(scale)
        self.mean = None if mean is None else torch.tensor(mean).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, batch: list) -> list:
        x, y = default_collate(batch)
        x = x.float() / self.scale
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return [x, y]

    def __repr__(self) -> str:
        return f"Normalise(scale={self.scale:g})"


@dataclass
class Tensors:
    """A whole data set in memory; ``x_val is None`` means split ``x`` by the val fraction."""

    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    num_classes: int | None = None
    collate: Any = None         # Normalise for uint8 images, None for float data


@dataclass
class Parts:
    """What a ``python`` data function returned: Datasets or DataLoaders (val may be None)."""

    train: Any
    val: Any
    num_classes: int | None = None
