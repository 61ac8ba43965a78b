"""The second front-end: non-strict ``torch.export``, for models whose Python
``torch.fx.symbolic_trace`` cannot follow (a Proxy iterated, a branch on a shape).

The exported program's module (``ep.module()``: ATen ops, parameters as ``get_attr`` of
their original names, a dynamic batch dimension) is turned into the vocabulary of the
symbolic front-end — ``aten.conv2d`` becomes ``F.conv2d``, ``aten.view`` the method
``view``, ``aten.slice`` an indexing, in-place ops stay in place — so one channel walker,
one rewrite and one verify serve both. ATen ops not converted stay as they are; the walker
freezes what they touch, naming them.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx

from pruneql.errors import first_line
from pruneql.graph.copying import share_copy

aten = torch.ops.aten
_END = 2 ** 63 - 1       # an open slice end in ATen


def export_trace(module: torch.nn.Module, inputs: tuple) -> tuple:
    """(GraphModule in the torch vocabulary, None) — or, when the model pins its batch
    size, the same from a static export and the reason. ``inputs`` need a batch of 2 or
    more (a batch of 1 is specialised by export)."""
    dynamic = tuple({0: torch.export.Dim.DYNAMIC} if isinstance(t, torch.Tensor) else None
                    for t in inputs)
    try:
        program, why = _export(module, inputs, dynamic), None
    except Exception as exc:          # retry without a dynamic batch: plans still work
        program, why = _export(module, inputs, None), first_line(exc)
    unlifted = program.module()
    inline_higher_order(unlifted)
    to_torch_vocabulary(unlifted)
    # a plain GraphModule (the unlifted one refuses eval()/train()); the graph keeps its
    # pytree codegen, so inputs and outputs keep the model's structure
    gm = fx.GraphModule(unlifted, unlifted.graph, type(module).__name__)
    return gm, why


def _export(module, inputs: tuple, dynamic):
    # a fresh copy: export leaves fake tensors in Python-side caches (YOLO's anchors)
    with torch.no_grad():
        return torch.export.export(share_copy(module).eval(), tuple(inputs),
                                   dynamic_shapes=dynamic, strict=False)


# ---- higher-order ops ------------------------------------------------------------------------

_INLINED = {"wrap_with_set_grad_enabled": 1, "wrap_with_autocast": 4}


def inline_higher_order(gm: fx.GraphModule) -> None:
    """Inline autocast / grad-mode regions: their subgraph's nodes move into the graph."""
    for node in list(gm.graph.nodes):
        at = _INLINED.get(getattr(node.target, "__name__", None)) \
            if isinstance(node.target, torch._ops.HigherOrderOperator) else None
        if at is None:
            continue
        sub = getattr(gm, node.args[at].target)
        env = dict(zip([n for n in sub.graph.nodes if n.op == "placeholder"],
                       node.args[at + 1:]))
        with gm.graph.inserting_before(node):
            for inner in sub.graph.nodes:
                if inner.op == "output":
                    outputs = fx.node.map_arg(inner.args[0], env.__getitem__)
                elif inner.op != "placeholder":
                    env[inner] = gm.graph.node_copy(inner, env.__getitem__)
        for user in list(node.users):
            user.replace_all_uses_with(outputs[user.args[1]])
            gm.graph.erase_node(user)
        gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.recompile()


# ---- ATen → torch ----------------------------------------------------------------------------

def _function(fn, *names, keywords=(), **fixed):
    """Convert to ``fn(*[arg named n for n in names], k=arg k for k in keywords, **fixed)``."""
    return ("function", fn, names, keywords, fixed)


def _method(name, *names):
    """Convert to the Tensor method ``name`` (self first, then these arguments)."""
    return ("method", name, names, (), {})


def _inplace(fn, *names):
    return ("function", fn, names, (), {"inplace": True})


def _resize(mode: str):
    keywords = ("align_corners",) if mode != "nearest" else ()
    return ("function", F.interpolate, ("input",), ("output_size", "scale_factors")
            + keywords, {"mode": mode})


_CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_TABLE = {
    "conv1d": _function(F.conv1d, *_CONV), "conv2d": _function(F.conv2d, *_CONV),
    "conv3d": _function(F.conv3d, *_CONV),
    "conv_transpose1d": _function(F.conv_transpose1d, *_CONV[:5], "output_padding",
                                  "groups", "dilation"),
    "conv_transpose2d": _function(F.conv_transpose2d, *_CONV[:5], "output_padding",
                                  "groups", "dilation"),
    "linear": _function(F.linear, "input", "weight", "bias"),
    "batch_norm": _function(F.batch_norm, "input", "running_mean", "running_var", "weight",
                            "bias", "training", "momentum", "eps"),
    "instance_norm": _function(F.instance_norm, "input", "running_mean", "running_var",
                               "weight", "bias", "use_input_stats", "momentum", "eps"),
    "layer_norm": _function(F.layer_norm, "input", "normalized_shape", "weight", "bias",
                            "eps"),
    "group_norm": _function(F.group_norm, "input", "num_groups", "weight", "bias", "eps"),
    "prelu": _function(F.prelu, "self", "weight"),
    "pad": _function(F.pad, "self", "pad", "mode", "value"),
    "dropout": _function(F.dropout, "input", "p", "train"),
    "feature_dropout": _function(F.dropout2d, "input", "p", "train"),
    "max_pool1d": _function(F.max_pool1d, "self", "kernel_size", "stride", "padding",
                            "dilation", "ceil_mode"),
    "max_pool2d": _function(F.max_pool2d, "self", "kernel_size", "stride", "padding",
                            "dilation", "ceil_mode"),
    "max_pool3d": _function(F.max_pool3d, "self", "kernel_size", "stride", "padding",
                            "dilation", "ceil_mode"),
    "avg_pool1d": _function(F.avg_pool1d, "self", "kernel_size", "stride", "padding",
                            "ceil_mode", "count_include_pad"),
    "avg_pool2d": _function(F.avg_pool2d, "self", "kernel_size", "stride", "padding",
                            "ceil_mode", "count_include_pad", "divisor_override"),
    "avg_pool3d": _function(F.avg_pool3d, "self", "kernel_size", "stride", "padding",
                            "ceil_mode", "count_include_pad", "divisor_override"),
    "adaptive_avg_pool1d": _function(F.adaptive_avg_pool1d, "self", "output_size"),
    "adaptive_avg_pool2d": _function(F.adaptive_avg_pool2d, "self", "output_size"),
    "adaptive_avg_pool3d": _function(F.adaptive_avg_pool3d, "self", "output_size"),
    "scaled_dot_product_attention": _function(
        F.scaled_dot_product_attention, "query", "key", "value", "attn_mask", "dropout_p",
        "is_causal", keywords=("scale", "enable_gqa")),
    "gelu": _function(F.gelu, "self", keywords=("approximate",)),
    "upsample_nearest1d": _resize("nearest"), "upsample_nearest2d": _resize("nearest"),
    "upsample_nearest3d": _resize("nearest"), "upsample_linear1d": _resize("linear"),
    "upsample_bilinear2d": _resize("bilinear"), "upsample_bicubic2d": _resize("bicubic"),
    "upsample_trilinear3d": _resize("trilinear"),
    "silu": _function(F.silu, "self"), "silu_": _inplace(F.silu, "self"),
    "hardswish": _function(F.hardswish, "self"), "hardswish_": _inplace(F.hardswish, "self"),
    "hardsigmoid": _function(F.hardsigmoid, "self"),
    "hardsigmoid_": _inplace(F.hardsigmoid, "self"),
    "hardtanh": _function(F.hardtanh, "self", "min_val", "max_val"),
    "hardtanh_": _inplace(F.hardtanh, "self", "min_val", "max_val"),
    "leaky_relu": _function(F.leaky_relu, "self", "negative_slope"),
    "leaky_relu_": _inplace(F.leaky_relu, "self", "negative_slope"),
    "elu": _function(F.elu, "self", "alpha"), "mish": _function(F.mish, "self"),
    "softplus": _function(F.softplus, "self", "beta", "threshold"),
    "cat": _function(torch.cat, "tensors", "dim"),
    "stack": _function(torch.stack, "tensors", "dim"),
    "matmul": _function(torch.matmul, "self", "other"),
    "bmm": _function(torch.bmm, "self", "mat2"), "mm": _function(torch.mm, "self", "mat2"),
    "addmm": _function(torch.addmm, "self", "mat1", "mat2", keywords=("beta", "alpha")),
    "einsum": _function(torch.einsum, "equation", "tensors"),
    "embedding": _function(F.embedding, "indices", "weight"),
    "split_with_sizes": _method("split", "self", "split_sizes", "dim"),
    "sym_size": _method("size", "self", "dim"),
}
# self-first ATen ops whose Tensor method has the same name and argument order
_SAME_METHOD = (
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "abs", "neg", "exp", "sqrt",
    "rsqrt", "square", "contiguous", "clone", "detach", "detach_", "type_as",
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "maximum", "minimum",
    "view", "reshape", "permute", "transpose", "flatten", "unflatten", "chunk", "split",
    "unbind", "expand", "expand_as", "reshape_as", "unsqueeze", "squeeze", "mean", "sum",
    "amax", "amin", "softmax", "log_softmax", "clamp", "clamp_", "clamp_min", "clamp_max",
    "pow", "round", "view_as", "repeat",
)
_DROPPED = ("_assert_tensor_metadata", "_assert_scalar")


def to_torch_vocabulary(gm: fx.GraphModule) -> fx.GraphModule:
    """Rewrite ``gm``'s ATen calls in place as torch functions, Tensor methods and
    indexing (see the module docstring)."""
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and node.target == "_guards_fn":
            gm.graph.erase_node(node)
        elif node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            _convert(gm.graph, node)
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()
    return gm


def _convert(graph: fx.Graph, node: fx.Node) -> None:
    name = node.target.overloadpacket.__name__
    if name in _DROPPED and not node.users:
        graph.erase_node(node)
    elif name in ("slice", "select"):
        _to_indexing(node, name)
    elif name in _TABLE:
        kind, target, names, keywords, fixed = _TABLE[name]
        args = _bound(node)
        node.op = "call_method" if kind == "method" else "call_function"
        node.target = target
        node.args = _trim(tuple(args.get(n) for n in names))
        node.kwargs = {**{_KEYWORD.get(k, k): args[k] for k in keywords
                          if args.get(k) is not None}, **fixed}
    elif name == "to":              # its overloads differ; Tensor.to takes these by name
        bound = _bound(node)
        node.op, node.target, node.args = "call_method", "to", (bound["self"],)
        node.kwargs = {k: bound[k] for k in ("device", "dtype") if bound.get(k) is not None}
    elif name in _SAME_METHOD:
        args, kwargs = _as_called(node)
        node.op, node.target, node.args, node.kwargs = "call_method", name, args, kwargs


# ATen argument names that a torch function spells differently
_KEYWORD = {"output_size": "size", "scale_factors": "scale_factor"}


def _as_called(node: fx.Node) -> tuple:
    """(args, kwargs) as the Tensor method takes them: positional arguments in schema
    order, keyword-only ones by name and only when not at their default."""
    schema = node.target._schema
    bound = _bound(node)
    args, kwargs = [], {}
    for arg in schema.arguments:
        if arg.name not in bound:
            continue
        value = bound[arg.name]
        default = arg.default_value if arg.has_default_value() else object()
        if arg.kwarg_only:
            if value is not default and value != default:
                kwargs[arg.name] = value
        else:
            args.append(value)
    while len(args) > 1 and _is_default(schema, len(args) - 1, args[-1]):
        args.pop()
    return tuple(args), kwargs


def _is_default(schema, index: int, value) -> bool:
    arg = schema.arguments[index]
    return arg.has_default_value() and (value is arg.default_value or value == arg.default_value)


def _bound(node: fx.Node) -> dict:
    """Every schema argument by name (defaults filled in), in schema order."""
    schema = node.target._schema
    given = dict(zip([a.name for a in schema.arguments], node.args))
    given.update(node.kwargs)
    bound = {}
    for arg in schema.arguments:
        if arg.name in given:
            bound[arg.name] = given[arg.name]
        elif arg.has_default_value():
            bound[arg.name] = arg.default_value
    return bound


def _trim(values: tuple) -> tuple:
    """Drop trailing Nones (the torch functions' defaults)."""
    values = list(values)
    while values and values[-1] is None:
        values.pop()
    return tuple(values)


def _to_indexing(node: fx.Node, name: str) -> None:
    """``aten.slice(x, d, a, b, s)`` → ``x[:, …, a:b:s]``; ``aten.select(x, d, i)`` →
    ``x[:, …, i]`` (the walker and rewrite know indexing)."""
    args = _bound(node)
    rank = len(node.meta["val"].shape) + (1 if name == "select" else 0)
    dim = args["dim"] % rank
    if name == "slice":
        end = None if args.get("end") in (None, _END) else args["end"]
        start = args.get("start") or None
        step = args.get("step", 1)
        item = slice(start, end, None if step == 1 else step)
    else:
        item = args["index"]
    node.target = operator.getitem
    node.args = (args["self"], (slice(None),) * dim + (item,))
    node.kwargs = {}
