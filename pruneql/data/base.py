"""What a source hands back before it is split and batched.

In-memory sources (digits, npz, cifar10, tokens) return :class:`Tensors`; the ``python``
and ``imagefolder`` sources return :class:`Parts` (torch Datasets or DataLoaders, read
lazily). :class:`Options` carries the statement's settings a reader may need.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import default_collate

from pruneql.errors import DataError

# ImageNet's per-channel mean and standard deviation on [0, 1] (the torchvision constants)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZE = ("imagenet", "none")
TASKS = ("classification", "segmentation", "lm", "python")


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


def renormalise(collate: Any, normalize: str | None, channels: int, name: str) -> Any:
    """The collate function of an in-memory source once ``normalize`` is applied.

    ``None`` keeps the source's default (CIFAR-10 its own statistics, others [0, 1]).

    >>> mean = renormalise(Normalise(255), "imagenet", 3, "npz").mean
    >>> [round(m, 3) for m in mean.flatten().tolist()]
    [0.485, 0.456, 0.406]
    >>> renormalise(Normalise(255, (0.5,), (0.5,)), "none", 1, "npz").mean is None
    True
    """
    if normalize is None:
        return collate
    if not isinstance(collate, Normalise):
        raise DataError(f"`normalize {normalize}` applies to 8-bit images; {name} holds "
                        f"other values", hint="leave `normalize` out for this data source")
    if normalize == "none":
        return Normalise(collate.scale)
    if channels != 3:
        raise DataError(f"`normalize imagenet` needs RGB images; {name} has {channels} "
                        f"channel{'s' * (channels != 1)}",
                        hint="use `normalize none`, or convert the images to RGB")
    return Normalise(collate.scale, IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class Options:
    """The statement's settings a reader may need besides its path."""

    resize: int | None = None
    normalize: str | None = None      # "imagenet" | "none" | None (the source's default)
    task: str | None = None           # None: inferred from the targets
    progress: Any = None              # pruneql.training.Progress-like, or None


@dataclass
class Tensors:
    """A whole data set in memory; ``x_val is None`` means split ``x`` by the val fraction,
    and ``x_test is None`` means split it by the test fraction.

    ``task`` says what the targets are: "classification" (labels), "segmentation" (class
    maps), "lm" (next-token ids), or None (float targets).
    """

    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    num_classes: int | None = None
    collate: Any = None         # Normalise for uint8 images, None for float data
    task: str | None = "classification"
    ignore_index: int | None = None
    vocab_size: int | None = None


@dataclass
class Parts:
    """Datasets or DataLoaders (val and test may be None) with what is known about them:
    what a ``python`` data function returned, or an image folder read lazily."""

    train: Any
    val: Any
    num_classes: int | None = None
    test: Any = None
    collate: Any = None
    input_shape: tuple | None = None
    skipped: list = field(default_factory=list)
    task: str | None = None
    ignore_index: int | None = None
