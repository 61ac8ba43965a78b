"""Physically remove channels: slice parameters and buffers into a smaller dense model."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import fx, nn

from pruneql.distributed import agree
from pruneql.errors import InternalError
from pruneql.graph.copying import graph_copy, own_modules, own_tensors
from pruneql.passes.context import Context


def rewrite(ctx: Context) -> Context:
    """Set ``ctx.pruned``: the traced model without the removed channels.

    The result is a new fx GraphModule with its own graph and module objects. The
    tensors that lose channels are new; of the rest, those borrowed from the caller's
    module are copied (whoever trains the result must not train the caller's model), the
    others are shared with the traced model. Besides parameters and buffers, graph constants
    that encode channel counts follow the cut: channel padding of option-A shortcuts,
    literal sizes in ``view``/``reshape``, ``split``/``chunk`` sizes and channel slices.
    """
    cut, analysis = ctx.cut, ctx.analysis
    keep = _Keep(cut)
    graph = graph_copy(ctx.gm.graph)      # nodes and their meta; no tensor is copied
    for node in list(graph.nodes):
        _fix_node(graph, node, keep)
    graph.lint()
    pruned = own_modules(fx.GraphModule(ctx.gm, graph, type(ctx.gm).__name__))
    modules = dict(pruned.named_modules())
    tied = _tied(pruned)
    for layer in analysis.layers.values():
        if layer.functional:        # no module: its tensors are sliced as parameters below
            continue
        keep_in, keep_out = cut.keep_index(layer.in_elems), cut.keep_index(layer.out_elems)
        if keep_in is not None or keep_out is not None:
            _slice(modules[layer.name], layer.kind, keep_in, keep_out)
    for param in analysis.params.values():
        _slice_param(pruned, param, cut.keep_index(param.ids))
    for node in graph.nodes:
        if "pruneql.rms" in node.meta:
            _scale_rms_gain(pruned, node, keep)
    _retie(tied)
    ctx.pruned = own_tensors(pruned, ctx.borrowed).eval()
    agree("pruned model", ctx.pruned)        # under torchrun: every rank the same
    return ctx


class _Keep:
    """Which channels of a space survive, as the graph constants need them."""

    def __init__(self, cut):
        self.cut, self.analysis = cut, cut.analysis

    def mask(self, ids: np.ndarray) -> np.ndarray:
        return self.cut.keep_mask(ids)

    def sizes(self, node_name: str):
        """(dim, kept size of each channel axis) of a node's space."""
        space = self.analysis.spaces.get(node_name)
        if space is None:
            return None
        keep = self.mask(space.ids)
        axes = range(keep.ndim)
        return space.dim, [int(keep.any(axis=tuple(a for a in axes if a != i)).sum())
                           if keep.ndim > 1 else int(keep.sum()) for i in axes]


# ---- modules -------------------------------------------------------------------------------

def _slice(module: nn.Module, kind: str, keep_in, keep_out) -> None:
    if keep_in is None and keep_out is None:
        return
    if kind == "norm":
        return _slice_norm(module, keep_out)
    if kind == "embedding":             # its columns are the features
        _set(module, "weight", module.weight.data.index_select(1, keep_out))
        module.embedding_dim = int(len(keep_out))
        return None
    if kind == "convT":
        return _slice_conv_transpose(module, keep_in, keep_out)
    grouped = kind == "conv" and module.groups > 1   # whole groups go: no input slicing
    weight = module.weight.data
    if keep_out is not None:
        weight = weight.index_select(0, keep_out)
    if keep_in is not None and not grouped:
        weight = weight.index_select(1, keep_in)
    _set(module, "weight", weight)
    if module.bias is not None and keep_out is not None:
        _set(module, "bias", module.bias.data.index_select(0, keep_out))
    if kind == "conv":
        if grouped:
            module.groups = module.groups * weight.shape[0] // module.out_channels
        module.out_channels = weight.shape[0]
        module.in_channels = weight.shape[1] * module.groups
    else:
        module.out_features, module.in_features = weight.shape


def _slice_conv_transpose(module: nn.Module, keep_in, keep_out) -> None:
    weight = module.weight.data                   # (in, out, *kernel)
    if keep_in is not None:
        weight = weight.index_select(0, keep_in)
    if keep_out is not None:
        weight = weight.index_select(1, keep_out)
        if module.bias is not None:
            _set(module, "bias", module.bias.data.index_select(0, keep_out))
    _set(module, "weight", weight)
    module.in_channels, module.out_channels = weight.shape[0], weight.shape[1]


def _slice_norm(module: nn.Module, keep) -> None:
    if keep is None:
        return
    old = _width(module)
    for name in ("weight", "bias"):
        if getattr(module, name, None) is not None:
            _set(module, name, getattr(module, name).data.index_select(0, keep))
    for name in ("running_mean", "running_var"):
        if getattr(module, name, None) is not None:
            setattr(module, name, getattr(module, name).index_select(0, keep))
    n = int(len(keep))
    if isinstance(module, nn.GroupNorm):
        module.num_groups = module.num_groups * n // old
        module.num_channels = n
    elif isinstance(module, nn.PReLU):
        module.num_parameters = n
    elif isinstance(module, nn.LayerNorm):          # pruned by consent: not exact
        module.normalized_shape = (n,)
    else:
        module.num_features = n


def _width(module: nn.Module) -> int:
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1]
    for attr in ("num_channels", "num_parameters", "num_features"):
        if hasattr(module, attr):
            return getattr(module, attr)
    raise AttributeError(f"{type(module).__name__} has no channel count")


def _tied(module: nn.Module) -> list:
    """[(module, attribute), ...] for each parameter used in several places (tied weights,
    such as a language model's embedding and output layer)."""
    places: dict = {}
    for m in module.modules():
        for name, p in m._parameters.items():
            if p is not None:
                places.setdefault(id(p), []).append((m, name))
    return [where for where in places.values() if len(where) > 1]


def _retie(tied: list) -> None:
    """Slices of one tied parameter become one parameter again (they must agree)."""
    for where in tied:
        first = getattr(*where[0])
        for m, name in where[1:]:
            other = getattr(m, name)
            if other is not first:
                if other.shape != first.shape or not torch.equal(other, first):
                    raise InternalError(f"tied parameter '{name}' was sliced two ways",
                                        hint="this is a PruneQL bug; please report it")
                m._parameters[name] = first


def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """``value`` comes from ``index_select``: already a copy, owned by nobody else."""
    old = getattr(module, name)
    setattr(module, name, nn.Parameter(value, requires_grad=old.requires_grad))


def _slice_param(gm: fx.GraphModule, param, keep) -> None:
    """A parameter used directly (say a layer-scale vector) loses the removed channels."""
    if keep is None:
        return
    owner_name, _, attr = param.target.rpartition(".")
    owner = gm.get_submodule(owner_name) if owner_name else gm
    old = getattr(owner, attr)
    value = old.data.index_select(param.axis, keep).clone()
    if isinstance(old, nn.Parameter):
        value = nn.Parameter(value, requires_grad=old.requires_grad)
    setattr(owner, attr, value)


# ---- graph constants ---------------------------------------------------------------------

def _fix_node(graph: fx.Graph, node: fx.Node, keep: _Keep) -> None:
    if "pruneql.pad" in node.meta:
        _fix_pad(node, keep)
    elif "pruneql.slice" in node.meta:
        _fix_slice(node, keep)
    elif "pruneql.split" in node.meta:
        _fix_split(graph, node, keep)
    elif node.meta.get("pruneql.view") and node.op == "call_method" \
            and node.target in ("view", "reshape", "expand"):
        _fix_view(node, keep)
    if "pruneql.groups" in node.meta:
        _fix_groups(node, keep)
    if "pruneql.sdpa_scale" in node.meta:
        _fix_scale(node, keep)
    if "pruneql.rms" in node.meta:
        _fix_rms(node, keep)
    if node.meta.get("pruneql.ln_shape"):
        _, (kept,) = keep.sizes(node.name)
        node.args = (node.args[0], [kept]) + tuple(node.args[2:])


def _rms_sizes(node: fx.Node, keep: _Keep) -> tuple:
    info = node.meta["pruneql.rms"]
    return len(info["channels"]), int(keep.mask(info["channels"]).sum())


def _fix_rms(node: fx.Node, keep: _Keep) -> None:
    """RMSNorm over n′ of n channels equals the original with the removed ones zeroed when
    eps is scaled by n/n′ (mean over n′ instead of n) and the gain by √(n/n′)
    (:func:`_scale_rms_gain`)."""
    n, kept = _rms_sizes(node, keep)
    if kept == n:
        return
    add = next(u for u in node.users)
    add.args = tuple(a * n / kept if isinstance(a, (int, float)) and not isinstance(a, bool)
                     else a for a in add.args)


def _scale_rms_gain(gm: fx.GraphModule, node: fx.Node, keep: _Keep) -> None:
    n, kept = _rms_sizes(node, keep)
    if kept == n:
        return
    owner, _, name = node.meta["pruneql.rms"]["gain"].rpartition(".")
    module = gm.get_submodule(owner) if owner else gm
    gain = getattr(module, name)
    scaled = gain.detach() * math.sqrt(n / kept)
    setattr(module, name, nn.Parameter(scaled, requires_grad=gain.requires_grad)
            if isinstance(gain, nn.Parameter) else scaled)


def _fix_scale(node: fx.Node, keep: _Keep) -> None:
    """Attention whose head dims shrink keeps the original softmax scale 1/√d: SDPA's
    default would take the new d."""
    q = keep.analysis.spaces.get(node.args[0].name)
    if q is not None and not keep.mask(q.ids).all() and node.kwargs.get("scale") is None:
        node.kwargs = {**node.kwargs, "scale": node.meta["pruneql.sdpa_scale"]}


def _fix_groups(node: fx.Node, keep: _Keep) -> None:
    """A literal group count (``F.group_norm``, a functional depthwise conv) follows the
    channels left: whole groups go."""
    name, position, size = node.meta["pruneql.groups"]
    _, (kept,) = keep.sizes(node.name)
    groups = kept // size
    if len(node.args) > position:
        node.args = node.args[:position] + (groups,) + node.args[position + 1:]
    else:
        node.kwargs = {**node.kwargs, name: groups}


def _fix_pad(node: fx.Node, keep: _Keep) -> None:
    """Channel padding shrinks by the padding channels that were removed."""
    pos, front, back = node.meta["pruneql.pad"]
    mask = keep.mask(keep.analysis.spaces[node.name].ids)
    pad = list(node.args[1] if len(node.args) > 1 else node.kwargs["pad"])
    pad[pos] = int(mask[:front].sum())
    pad[pos + 1] = int(mask[len(mask) - back:].sum()) if back else 0
    if len(node.args) > 1:
        node.args = (node.args[0], tuple(pad), *node.args[2:])
    else:
        node.kwargs = {**node.kwargs, "pad": tuple(pad)}


def _fix_slice(node: fx.Node, keep: _Keep) -> None:
    """``x[:, a:b]`` keeps the same channels: new bounds count the kept ones before them."""
    src = keep.analysis.spaces[node.args[0].name]
    dim = node.meta["pruneql.slice"]
    index = list(node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],))
    start, stop, _ = index[dim].indices(len(src.ids))
    mask = keep.mask(src.ids)
    index[dim] = slice(int(mask[:start].sum()), int(mask[:stop].sum()))
    node.args = (node.args[0], tuple(index))


def _fix_split(graph: fx.Graph, node: fx.Node, keep: _Keep) -> None:
    """``split``/``chunk`` along the channels becomes ``torch.split`` with the kept sizes."""
    dim = node.meta["pruneql.split"]
    src = node.args[0] if node.args else node.kwargs["input"]
    sizes = _piece_sizes(node, keep)
    with graph.inserting_before(node):
        new = graph.call_function(torch.split, (src, sizes), {"dim": dim})
    node.replace_all_uses_with(new)
    graph.erase_node(node)


def _piece_sizes(node: fx.Node, keep: _Keep) -> list:
    src = keep.analysis.spaces[(node.args[0] if node.args else node.kwargs["input"]).name]
    bounds = node.meta["pruneql.split.bounds"]
    mask = keep.mask(src.ids)
    return [int(mask[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])]


def _fix_view(node: fx.Node, keep: _Keep) -> None:
    """Literal channel counts in ``view``/``reshape`` follow the cut."""
    found = keep.sizes(node.name)
    if found is None:
        return
    dim, sizes = found
    packed = len(node.args) == 2 and isinstance(node.args[1], (tuple, list))
    shape = list(node.args[1] if packed else node.args[1:])
    old = node.meta["pruneql.shape"]
    for i, size in enumerate(sizes):
        pos = dim + i
        if pos >= len(shape) or shape[pos] == -1:
            continue
        # a size read at run time may come from another tensor whose channels changed
        # (ViT's `reshape(B, N, C)` with C of the block's input): the kept width, literally
        if isinstance(shape[pos], fx.Node) or (shape[pos] == old[pos] and size != old[pos]):
            shape[pos] = size
    node.args = (node.args[0], tuple(shape)) if packed else (node.args[0], *shape)
