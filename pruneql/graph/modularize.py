"""``F.conv2d(x, self.w, self.b, ...)`` / ``F.linear`` on the model's own parameters become
module calls, so the rest of the compiler treats functional and module layers alike.

The new module (named ``<owner>.conv2d``, ``<owner>.linear``, ...) takes over the
parameters. ``torch.addmm(b, x, w)`` on parameters — Hugging Face's ``Conv1D``, a linear
layer that stores its weight as (in, out) — becomes an ``nn.Linear`` holding the
transposed weight; its node is marked ``pruneql.transposed`` (a plan cannot replay it
onto the model's own class, whose layer keeps the other layout).

Calls whose weights are computed, shared, used elsewhere, or owned by a module the graph
also calls (whose own forward may read them) stay as they are; the channel analysis
freezes them with the reason.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

_FUNCTIONAL = {F.conv1d: nn.Conv1d, F.conv2d: nn.Conv2d, F.conv3d: nn.Conv3d, F.linear: nn.Linear,
               F.embedding: nn.Embedding}
_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
_EMBEDDING_ARGS = ("input", "weight", "padding_idx", "max_norm")


def modularize(gm: fx.GraphModule) -> fx.GraphModule:
    """Turn functional conv/linear calls on parameters into module calls (in place).

    >>> import torch
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = nn.Parameter(torch.randn(4, 3, 1, 1))
    ...     def forward(self, x):
    ...         return F.conv2d(x, self.w)
    >>> gm = modularize(fx.symbolic_trace(Net()))
    >>> [n.op for n in gm.graph.nodes], type(gm.get_submodule("conv2d")).__name__
    (['placeholder', 'call_module', 'output'], 'Conv2d')
    """
    called = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    changed = False
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in _FUNCTIONAL:
            changed |= _modularize_call(gm, node, called)
        elif node.op == "call_function" and node.target is torch.addmm:
            changed |= _modularize_addmm(gm, node, called)
    if changed:
        gm.graph.lint()
        gm.recompile()
    return gm


def _modularize_call(gm: fx.GraphModule, node: fx.Node, called: set) -> bool:
    names = _EMBEDDING_ARGS if node.target is F.embedding else \
        _CONV_ARGS if node.target is not F.linear else _CONV_ARGS[:3]
    call = {**{k: v for k, v in _CONV_DEFAULTS.items() if k in names},
            **dict(zip(names, node.args)), **node.kwargs}
    params = [call["weight"]] + ([call["bias"]] if call.get("bias") is not None else [])
    if not all(isinstance(p, fx.Node) and p.op == "get_attr" and len(p.users) == 1
               for p in params):
        return False
    if any(_inside_called(p.target, called) for p in params):
        return False           # the owner's own forward may read them: not ours to move
    tensors = [attribute(gm, p.target) for p in params]
    if not all(isinstance(t, nn.Parameter) for t in tensors):
        return False
    module = _module_for(node.target, call, tensors)
    if module is None:
        return False
    _install(gm, node, params, module, call["input"])
    return True


def _modularize_addmm(gm: fx.GraphModule, node: fx.Node, called: set) -> bool:
    """``addmm(b, x, w)`` = ``x @ w + b`` with ``w`` (in, out) and ``b`` (out,) parameters
    and beta = alpha = 1: a Linear with weight ``wᵀ``."""
    call = {**dict(zip(("bias", "input", "weight"), node.args)), **node.kwargs}
    if call.get("beta", 1) != 1 or call.get("alpha", 1) != 1:
        return False
    params = [call.get("weight"), call.get("bias")]
    if not all(isinstance(p, fx.Node) and p.op == "get_attr" for p in params) or \
            any(_inside_called(p.target, called) for p in params):
        return False
    sizes = [u for u in params[0].users if u is not node]
    if len(params[1].users) != 1 or not all(_size_query(u) is not None for u in sizes):
        return False
    weight, bias = (attribute(gm, p.target) for p in params)
    if not (isinstance(weight, nn.Parameter) and isinstance(bias, nn.Parameter)
            and weight.dim() == 2 and bias.dim() == 1 and bias.shape[0] == weight.shape[1]):
        return False
    module = nn.Linear(weight.shape[0], weight.shape[1], device="meta")
    module.weight = nn.Parameter(weight.detach().t().contiguous(),
                                 requires_grad=weight.requires_grad)
    module.bias = bias
    replacement = _install(gm, node, params, module, call["input"], sizes)
    replacement.meta["pruneql.transposed"] = True
    return True


def _install(gm: fx.GraphModule, node: fx.Node, params: list, module: nn.Module,
             source: fx.Node, sizes: list = ()) -> fx.Node:
    """Call ``module`` on ``source`` in place of ``node``; ``params`` (now the module's)
    leave the graph. ``sizes``: queries ``w.size(dim)`` on the weight, which then read the
    new call's output width (dim 1 / -1) or ``source``'s width (dim 0 / -2)."""
    owner = params[0].target.rpartition(".")[0]
    with gm.graph.inserting_before(node):
        replacement = gm.graph.call_module(_place(gm, owner, params, module, node), (source,))
    replacement.meta.update(node.meta)
    for query in sizes:
        query.args = (replacement if _size_query(query) in (1, -1) else source, -1)
        query.kwargs = {}
    node.replace_all_uses_with(replacement)
    gm.graph.erase_node(node)
    for p in params:
        gm.graph.erase_node(p)
    return replacement


def _size_query(node: fx.Node):
    """The dim of ``w.size(dim)`` (``node``), else None."""
    if node.op != "call_method" or node.target != "size" or len(node.args) + \
            len(node.kwargs) != 2:
        return None
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    return dim if dim in (0, 1, -1, -2) else None


def _module_for(fn, call: dict, tensors: list):
    weight, bias = tensors[0], tensors[1] if len(tensors) > 1 else None
    cls = _FUNCTIONAL[fn]
    if cls is nn.Embedding:
        if call.get("max_norm") is not None:
            return None                  # renormalises rows in place: not a plain lookup
        module = nn.Embedding(weight.shape[0], weight.shape[1], device="meta")
        module.weight = weight
        return module
    if cls is nn.Linear:
        module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                           device="meta")
    else:
        static = [call[k] for k in ("stride", "padding", "dilation", "groups")]
        if any(isinstance(v, fx.Node) for v in static):
            return None
        module = cls(weight.shape[1] * call["groups"], weight.shape[0], weight.shape[2:],
                     stride=call["stride"], padding=call["padding"],
                     dilation=call["dilation"], groups=call["groups"],
                     bias=bias is not None, device="meta")
    module.weight = weight
    module.bias = bias
    return module


def _place(gm: fx.GraphModule, owner: str, params: list, module: nn.Module, node) -> str:
    """Install ``module`` and return its name. A plain container holding just these
    parameters (what ``torch.export`` makes of a user's Conv2d) is replaced, so the layer
    keeps the user's name; otherwise it goes beside the owner as ``owner.conv2d``."""
    container = gm.get_submodule(owner) if owner else None
    moved = {p.target.rpartition(".")[2] for p in params}
    if container is not None and type(container) is nn.Module and \
            not any(True for _ in container.children()) and \
            set(container._parameters) | set(container._buffers) <= moved:
        parent, _, name = owner.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, name, module)
        return owner
    for p in params:
        attr_owner, _, attr = p.target.rpartition(".")
        delattr(gm.get_submodule(attr_owner) if attr_owner else gm, attr)
    name = _free_name(gm, owner, node.target.__name__)
    gm.add_submodule(name, module)
    return name



def _inside_called(target: str, called: set) -> bool:
    """Whether ``target`` belongs to a module the graph calls (or one inside it)."""
    parts = target.split(".")[:-1]
    return any(".".join(parts[:i]) in called for i in range(1, len(parts) + 1))


def attribute(gm: fx.GraphModule, target: str):
    """The tensor (or module) a ``get_attr`` node's ``target`` names in ``gm``."""
    owner, _, attr = target.rpartition(".")
    return getattr(gm.get_submodule(owner) if owner else gm, attr)


def _free_name(gm: fx.GraphModule, owner: str, base: str) -> str:
    existing = dict(gm.named_modules())
    stem = f"{owner}.{base}" if owner else base
    name, i = stem, 1
    while name in existing:
        name, i = f"{stem}_{i}", i + 1
    return name


