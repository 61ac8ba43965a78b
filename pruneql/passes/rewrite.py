"""Physically remove channels: slice parameters and buffers into a smaller dense model."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import fx, nn

from pruneql.passes.context import Context


def rewrite(ctx: Context) -> Context:
    """Set ``ctx.pruned``: a copy of the traced model without the removed channels.

    The copy is an fx GraphModule; besides parameters, graph constants that encode channel
    counts (channel padding of option-A shortcuts, literal sizes in ``view``) are updated.
    """
    pruned = copy.deepcopy(ctx.gm)
    analysis, removed = ctx.analysis, ctx.removed
    modules = dict(pruned.named_modules())
    for layer in analysis.layers.values():
        keep_in = _kept(analysis, layer.in_elems, removed)
        keep_out = _kept(analysis, layer.out_elems, removed)
        _slice(modules[layer.name], layer.kind, keep_in, keep_out)
    for node in pruned.graph.nodes:
        if "pruneql.pad" in node.meta:
            _fix_pad(node, analysis, removed)
        elif node.op == "call_method" and node.target in ("view", "reshape"):
            _fix_view(node, analysis, removed)
    pruned.recompile()
    ctx.pruned = pruned.eval()
    return ctx


def _kept(analysis, elems, removed) -> torch.Tensor | None:
    if elems is None:
        return None
    keep = ~removed[analysis.classes[elems]]
    return None if keep.all() else torch.from_numpy(np.nonzero(keep)[0])


def _slice(module: nn.Module, kind: str, keep_in, keep_out) -> None:
    if keep_in is None and keep_out is None:
        return
    if kind == "norm":
        return _slice_norm(module, keep_out)
    grouped = kind == "conv" and module.groups > 1   # whole groups go: no input slicing
    weight = module.weight.data
    if keep_out is not None:
        weight = weight[keep_out]
    if keep_in is not None and not grouped:
        weight = weight[:, keep_in]
    _set(module, "weight", weight)
    if module.bias is not None and keep_out is not None:
        _set(module, "bias", module.bias.data[keep_out])
    if kind == "conv":
        if grouped:
            module.groups = module.groups * weight.shape[0] // module.out_channels
        module.out_channels = weight.shape[0]
        module.in_channels = weight.shape[1] * module.groups
    else:
        module.out_features, module.in_features = weight.shape


def _slice_norm(module: nn.Module, keep) -> None:
    if keep is None:
        return
    for name in ("weight", "bias"):
        if getattr(module, name, None) is not None:
            _set(module, name, getattr(module, name).data[keep])
    for name in ("running_mean", "running_var"):
        if getattr(module, name, None) is not None:
            setattr(module, name, getattr(module, name)[keep].clone())
    module.num_features = int(len(keep))


def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    old = getattr(module, name)
    setattr(module, name, nn.Parameter(value.clone(), requires_grad=old.requires_grad))


def _fix_pad(node: fx.Node, analysis, removed) -> None:
    """Channel padding shrinks by the padding channels that were removed."""
    pos, front, back = node.meta["pruneql.pad"]
    keep = ~removed[analysis.classes[analysis.spaces[node.name]]]
    pad = list(node.args[1] if len(node.args) > 1 else node.kwargs["pad"])
    pad[pos] = int(keep[:front].sum())
    pad[pos + 1] = int(keep[len(keep) - back:].sum()) if back else 0
    if len(node.args) > 1:
        node.args = (node.args[0], tuple(pad), *node.args[2:])
    else:
        node.kwargs = {**node.kwargs, "pad": tuple(pad)}


def _fix_view(node: fx.Node, analysis, removed) -> None:
    """A literal channel (or flattened feature) count in ``view``/``reshape`` follows the cut."""
    elems = analysis.spaces.get(node.name)
    if elems is None:
        return
    width = int((~removed[analysis.classes[elems]]).sum())
    packed = len(node.args) == 2 and isinstance(node.args[1], (tuple, list))
    shape = list(node.args[1] if packed else node.args[1:])
    if len(shape) > 1 and isinstance(shape[1], int) and shape[1] != -1:
        shape[1] = width
        node.args = (node.args[0], tuple(shape)) if packed else (node.args[0], *shape)
