"""Gates: zero channel classes where they are consumed, without rewriting the model.

Zeroing a class at the inputs of every layer that reads it is exactly what removing it
does (the verify pass checks the same equivalence), so gates let data-driven passes try
removals cheaply: sensitivity trials, ensemble masks, the oracle, gradual pruning.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from pruneql.graph.channels import PRODUCER_KINDS, ChannelAnalysis


def consumers(analysis: ChannelAnalysis) -> list:
    """Layers whose input channels can be removed: conv, transposed conv, linear."""
    return [l for l in analysis.layers.values()
            if l.kind in PRODUCER_KINDS and l.in_elems is not None and not l.functional]


def channel_dim(layer) -> int:
    """Where a consumer's input keeps its channels: dim 1, or the last dim for a Linear."""
    return len(layer.in_shape) - 1 if layer.kind == "linear" else 1


def input_masks(analysis: ChannelAnalysis, removed: np.ndarray) -> dict:
    """Consumer module name -> float keep-mask (broadcastable to its input), where any."""
    masks = {}
    for layer in consumers(analysis):
        keep = analysis.kept(layer.in_elems, removed)
        if keep.all():
            continue
        shape = [1] * len(layer.in_shape)
        shape[channel_dim(layer)] = len(keep)
        masks[layer.name] = torch.from_numpy(keep.astype(np.float32)).view(shape)
    return masks


@contextmanager
def gated(module: torch.nn.Module, analysis: ChannelAnalysis, removed: np.ndarray):
    """Within the block, ``module`` (the traced model the analysis describes) computes as if
    the classes marked in ``removed`` were pruned.

    >>> import torch
    >>> from pruneql.graph.trace import trace
    >>> from pruneql.graph.channels import analyze
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.Conv2d(2, 1, 1))
    >>> gm = trace(net, (torch.ones(1, 1, 1, 1),)); a = analyze(gm)
    >>> removed = np.zeros(len(a.classes), bool); removed[a.groups[0].classes] = True
    >>> with gated(gm, a, removed), torch.no_grad():
    ...     float(gm(torch.ones(1, 1, 1, 1))) == float(net[1].bias)
    True
    """
    modules = dict(module.named_modules())
    handles = [modules[name].register_forward_pre_hook(_multiply(mask))
               for name, mask in input_masks(analysis, removed).items()]
    try:
        yield module
    finally:
        for handle in handles:
            handle.remove()


def _multiply(mask: torch.Tensor):
    def hook(_module, args):
        return (args[0] * mask.to(args[0].dtype),) + tuple(args[1:])
    return hook
