"""Model zoo: the reference networks of the papers PruneQL reproduces.

Depends on torch alone. Every model is ``torch.fx.symbolic_trace``-able and is returned by
:func:`build` in eval mode with deterministic weights.

Adding a model: write its factory (a plain function returning an ``nn.Module``, keyword
arguments such as ``num_classes`` allowed) in a module of this package, then call
:func:`register` with a :class:`ZooEntry` at the bottom of this file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .resnet import ResNet, resnet18, resnet34, resnet50
from .resnet_cifar import CifarResNet, OptionAShortcut, resnet56_cifar, resnet110_cifar, resnet_cifar
from .vgg import VGGCifar, vgg16_cifar

__all__ = [
    "ZooEntry", "ZOO", "register", "names", "entry", "build",
    "vgg16_cifar", "resnet_cifar", "resnet56_cifar", "resnet110_cifar",
    "resnet18", "resnet34", "resnet50",
    "VGGCifar", "CifarResNet", "OptionAShortcut", "ResNet",
]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]      # without the batch dimension, e.g. (3, 32, 32)
    description: str
    paper: str = ""                   # e.g. "Li et al. 2017, Table 1"


ZOO: dict[str, ZooEntry] = {}


def register(e: ZooEntry) -> ZooEntry:
    """Add ``e`` to :data:`ZOO`; a name can be registered only once."""
    if e.name in ZOO:
        raise ValueError(f"zoo model {e.name!r} is already registered")
    ZOO[e.name] = e
    return e


def names() -> list[str]:
    """All registered model names, sorted."""
    return sorted(ZOO)


def entry(name: str) -> ZooEntry:
    """The entry for ``name``; ``KeyError`` if unknown (callers turn it into a user error)."""
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(names())}") from None


def build(name: str, seed: int = 0, **kwargs) -> nn.Module:
    """Construct ``name`` with weights drawn from ``torch.manual_seed(seed)``, in eval mode.

    The caller's global RNG state is left untouched (``torch.random.fork_rng``), so two builds
    with the same seed and kwargs give identical state_dicts. ``kwargs`` go to the factory
    (e.g. ``num_classes=100``).
    """
    e = entry(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = e.factory(**kwargs)
    return model.eval()


_LI2017 = "Li et al. 2017, Table 1"

register(ZooEntry(
    "vgg16_cifar", vgg16_cifar, (3, 32, 32),
    "CIFAR VGG-16: 13 conv3x3+BN+ReLU, 5 max-pools, fc1-bn14-fc2 classifier, no dropout",
    _LI2017))
register(ZooEntry(
    "resnet56_cifar", resnet56_cifar, (3, 32, 32),
    "CIFAR ResNet-56 (3 stages x 9 basic blocks, 16/32/64 planes), option-A shortcuts",
    _LI2017))
register(ZooEntry(
    "resnet110_cifar", resnet110_cifar, (3, 32, 32),
    "CIFAR ResNet-110 (3 stages x 18 basic blocks, 16/32/64 planes), option-A shortcuts",
    _LI2017))
register(ZooEntry(
    "resnet18", resnet18, (3, 224, 224),
    "ImageNet ResNet-18 (basic blocks, 1x1 projection shortcuts), torchvision layout",
    "He et al. 2016"))
register(ZooEntry(
    "resnet34", resnet34, (3, 224, 224),
    "ImageNet ResNet-34 (basic blocks, 1x1 projection shortcuts), torchvision layout",
    _LI2017))
register(ZooEntry(
    "resnet50", resnet50, (3, 224, 224),
    "ImageNet ResNet-50 v1.5 (bottlenecks, stride on the 3x3), torchvision layout",
    "He et al. 2016; Li et al. 2017 context (uniformly scaled ResNet-50s)"))
