"""Model zoo: the reference networks of the papers PruneQL reproduces.

Depends on torch alone. Every model is ``torch.fx.symbolic_trace``-able and is returned by
:func:`build` in eval mode with deterministic weights.

Adding a model: write its factory (a plain function returning an ``nn.Module``, keyword
arguments such as ``num_classes`` allowed) in a module of this package, then call
:func:`register` with a :class:`ZooEntry` at the bottom of this file. A model whose input is
not a float image (token ids) also gives the entry an ``example`` maker; :func:`example_input`
uses it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn

from .resnet import ResNet, resnet18, resnet34, resnet50
from .resnet_cifar import CifarResNet, OptionAShortcut, resnet56_cifar, resnet110_cifar, resnet_cifar
from .vgg import VGGCifar, vgg16_cifar
from .convnext import ConvNeXt, convnext_tiny
from .densenet import DenseNet, densenet121
from .digits import DigitsCNN, digits_cnn
from .efficientnet import EfficientNet, efficientnet_b0
from .inception import InceptionCifar, inception_cifar
from .mobilenet import MobileNetV2, MobileNetV3, mobilenet_v2, mobilenet_v3_small
from .regnet import RegNet, regnety_400mf
from .resnext import resnext50_32x4d
from .shufflenet import ShuffleNetV2, shufflenet_v2_x1_0
from .unet import UNet, unet
from .vit import VisionTransformer, vit_tiny
from .bert import BertForSequenceClassification, bert_tiny
from .llama import LlamaForCausalLM, llama_tiny

__all__ = [
    "ZooEntry", "ZOO", "register", "names", "entry", "build",
    "vgg16_cifar", "resnet_cifar", "resnet56_cifar", "resnet110_cifar",
    "resnet18", "resnet34", "resnet50",
    "VGGCifar", "CifarResNet", "OptionAShortcut", "ResNet",
    "resnext50_32x4d", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "densenet121",
    "inception_cifar", "shufflenet_v2_x1_0", "convnext_tiny", "regnety_400mf", "unet",
    "MobileNetV2", "MobileNetV3", "EfficientNet", "DenseNet", "InceptionCifar", "ShuffleNetV2",
    "ConvNeXt", "RegNet", "UNet", "digits_cnn", "DigitsCNN",
    "example_input", "token_ids",
    "vit_tiny", "bert_tiny", "llama_tiny",
    "VisionTransformer", "BertForSequenceClassification", "LlamaForCausalLM",
]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]      # without the batch dimension, e.g. (3, 32, 32)
    description: str
    paper: str = ""                   # e.g. "Li et al. 2017, Table 1"
    # makes a batch of example inputs where the input is not a float image, e.g. token ids
    # (batch, T) with input_shape (T,): example(batch, generator) -> Tensor
    example: Callable[[int, torch.Generator], torch.Tensor] | None = None


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


def example_input(name: str, batch: int = 1, seed: int = 0,
                  shape: tuple | None = None) -> torch.Tensor:
    """An example input batch for ``name``, drawn from ``torch.Generator().manual_seed(seed)``.

    The entry's ``example`` makes it where there is one (token ids for language models, of
    ``shape`` when given); otherwise it is ``torch.randn((batch, *shape or input_shape))``.

    >>> example_input("vgg16_cifar", batch=2).shape
    torch.Size([2, 3, 32, 32])
    >>> ids = example_input("llama_tiny", batch=2)
    >>> ids.shape == (2, *entry("llama_tiny").input_shape), ids.dtype
    (True, torch.int64)
    """
    e = entry(name)
    generator = torch.Generator().manual_seed(seed)
    if e.example is not None:
        return e.example(batch, generator, **({"shape": tuple(shape)} if shape else {}))
    return torch.randn((batch, *(shape or e.input_shape)), generator=generator)


def token_ids(batch: int, generator: torch.Generator, *, vocab: int, length: int,
              shape: tuple | None = None) -> torch.Tensor:
    """Uniform random token ids (batch, length) in [0, vocab): a ZooEntry ``example``
    (``shape``, when given, is ``(length,)``).

    >>> token_ids(2, torch.Generator().manual_seed(0), vocab=10, length=4).shape
    torch.Size([2, 4])
    """
    return torch.randint(0, vocab, (batch, *(shape or (length,))), generator=generator)


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
register(ZooEntry(
    "resnext50_32x4d", resnext50_32x4d, (3, 224, 224),
    "ImageNet ResNeXt-50 32x4d: ResNet-50 v1.5 bottlenecks with 32-group 3x3 convs, "
    "torchvision layout",
    "Xie et al. 2017"))
register(ZooEntry(
    "mobilenet_v2", mobilenet_v2, (3, 224, 224),
    "ImageNet MobileNetV2 1.0: inverted residuals (expand 1x1, depthwise 3x3, linear 1x1), "
    "ReLU6, torchvision layout",
    "Sandler et al. 2018"))
register(ZooEntry(
    "mobilenet_v3_small", mobilenet_v3_small, (3, 224, 224),
    "ImageNet MobileNetV3-Small: inverted residuals with hardsigmoid squeeze-excitation, "
    "hardswish, torchvision layout",
    "Howard et al. 2019"))
register(ZooEntry(
    "efficientnet_b0", efficientnet_b0, (3, 224, 224),
    "ImageNet EfficientNet-B0: MBConv blocks with SiLU and sigmoid squeeze-excitation, "
    "torchvision layout, stochastic depth omitted (identity at eval)",
    "Tan & Le 2019"))
register(ZooEntry(
    "densenet121", densenet121, (3, 224, 224),
    "ImageNet DenseNet-121 (BC, growth 32, blocks 6/12/24/16): torch.cat dense blocks, "
    "BN-ReLU-conv1x1-avgpool transitions, torchvision layout",
    "Huang et al. 2017"))
register(ZooEntry(
    "inception_cifar", inception_cifar, (3, 32, 32),
    "CIFAR GoogLeNet-style net at ~half width: 7 inception modules (1x1 | 1x1-3x3 | "
    "1x1-3x3-3x3 | maxpool-1x1, torch.cat), 10 classes",
    "Szegedy et al. 2015 (factorised 5x5: Szegedy et al. 2016)"))
register(ZooEntry(
    "shufflenet_v2_x1_0", shufflenet_v2_x1_0, (3, 224, 224),
    "ImageNet ShuffleNetV2 1.0x: channel split (chunk), depthwise branches, channel shuffle "
    "(view-transpose-view), torchvision layout",
    "Ma et al. 2018"))
register(ZooEntry(
    "convnext_tiny", convnext_tiny, (3, 224, 224),
    "ImageNet ConvNeXt-T: depthwise 7x7, channels-last LayerNorm/MLP with layer-scale gamma, "
    "LayerNorm2d downsampling, reference layout, stochastic depth omitted (identity at eval)",
    "Liu et al. 2022"))
register(ZooEntry(
    "regnety_400mf", regnety_400mf, (3, 224, 224),
    "ImageNet RegNetY-400MF: grouped (width 8) bottlenecks with squeeze-excitation, widths "
    "48/104/208/440, depths 1/3/6/6, torchvision layout",
    "Radosavovic et al. 2020"))
register(ZooEntry(
    "unet", unet, (3, 64, 64),
    "Small 4-level U-Net (16/32/64/128): BN+ReLU encoder, GroupNorm+per-channel PReLU "
    "bottleneck/decoder, ConvTranspose2d and bilinear upsampling, skip concat, 2-class map",
    "Ronneberger et al. 2015"))

register(ZooEntry(
    "digits_cnn", digits_cnn, (1, 8, 8),
    "Small CNN for the bundled 8x8 UCI digits (3 convs + 2 linears, ~1.8M MACs); "
    "a trained checkpoint ships as pruneql/zoo/digits_cnn.pt",
    "PruneQL demo model"))

register(ZooEntry(
    "vit_tiny", vit_tiny, (3, 224, 224),
    "ViT-Ti/16 (embed 192, depth 12, 3 heads, MLP 768): patch conv 16x16/16, class token, "
    "fused-qkv attention (SDPA), timm vit_tiny_patch16_224 layout",
    "Dosovitskiy et al. 2021; DeiT-Ti size: Touvron et al. 2021"))
_TEXT_LENGTH = 32
register(ZooEntry(
    "bert_tiny", bert_tiny, (_TEXT_LENGTH,),
    "BERT-Tiny sequence classifier (2 layers, hidden 128, 2 heads, intermediate 512, "
    "2 labels): input token ids, Hugging Face BertForSequenceClassification layout",
    "Devlin et al. 2019; BERT-Tiny size: Turc et al. 2019",
    example=partial(token_ids, vocab=30522, length=_TEXT_LENGTH)))
register(ZooEntry(
    "llama_tiny", llama_tiny, (_TEXT_LENGTH,),
    "Byte-level Llama (vocab 256, 2 layers, hidden 128, 4 heads / 2 KV heads, SwiGLU 384, "
    "RoPE, RMSNorm): input token ids, logits per position, Hugging Face LlamaForCausalLM "
    "layout",
    "Touvron et al. 2023 (Llama); GQA: Ainslie et al. 2023",
    example=partial(token_ids, vocab=256, length=_TEXT_LENGTH)))
