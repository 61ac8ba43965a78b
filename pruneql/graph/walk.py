"""One walk over the fx graph that gives every channel its element id.

A *space* is the channel part of a tensor: an array of element ids laid over the tensor
dims ``[dim, dim + ids.ndim)``. Usually that is dim 1 with a 1-D array; ``permute`` moves it
(channels-last blocks), a ``view`` that splits the channels makes it 2-D (channel shuffle)
and a ``view`` that merges it with later dims flattens it. Ops either reuse their input's
ids, compose them (``cat``, channel ``F.pad``, ``split``), or tie them together (``add``,
``mul``, grouped convs, GroupNorm): tied ids form one *class*, removed everywhere at once.
An op not modelled here *pins* the classes it touches, with the reason.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

from pruneql.graph import ops

INPUT_REASON = "model input"
OUTPUT_REASON = "reaches a model output"


class UnionFind:
    """Disjoint sets over element ids; every set is named by its smallest id. Unions of
    whole arrays are done array-wise (a residual add couples thousands of pairs).

    >>> uf = UnionFind(); a = uf.fresh(4); b = uf.fresh(4)
    >>> uf.union_arrays(a[[0, 1, 2]], b[[1, 2, 3]]); uf.union_all(b[:2])
    >>> uf.roots().tolist()
    [0, 1, 2, 3, 0, 0, 1, 2]
    """

    def __init__(self):
        self.parent = np.zeros(64, dtype=np.int64)
        self.size = 0

    def fresh(self, n: int) -> np.ndarray:
        start = self.size
        if start + n > len(self.parent):
            grown = np.zeros(max(2 * len(self.parent), start + n), dtype=np.int64)
            grown[:start] = self.parent[:start]
            self.parent = grown
        ids = np.arange(start, start + n, dtype=np.int64)
        self.parent[start:start + n] = ids
        self.size = start + n
        return ids

    def find(self, x: int) -> int:
        return int(self.find_all(np.asarray([x]))[0])

    def find_all(self, ids: np.ndarray) -> np.ndarray:
        """The set of each id (any shape), compressing the paths it walked."""
        parent = self.parent
        roots = parent[ids]
        while True:
            up = parent[roots]
            if np.array_equal(up, roots):
                break
            roots = up
        parent[ids] = roots
        return roots

    def union_arrays(self, a: np.ndarray, b: np.ndarray) -> None:
        """Join the set of ``a[i]`` with the set of ``b[i]`` for every i."""
        a, b = a.ravel(), b.ravel()
        while True:
            ra, rb = self.find_all(a), self.find_all(b)
            apart = ra != rb
            if not apart.any():
                return
            ra, rb = ra[apart], rb[apart]
            # each root joins the smallest set it meets; the rest wait for the next round
            np.minimum.at(self.parent, np.maximum(ra, rb), np.minimum(ra, rb))
            a, b = a[apart], b[apart]

    def union_all(self, elems: np.ndarray) -> None:
        flat = elems.ravel()
        if len(flat) > 1:
            self.union_arrays(flat[:1].repeat(len(flat) - 1), flat[1:])

    def roots(self) -> np.ndarray:
        """Each id's representative, by pointer jumping over the whole array at once."""
        parent = self.parent[:self.size].copy()
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                return parent
            parent = jumped


@dataclass
class Space:
    """Element ids of a tensor's channels, laid over dims ``[dim, dim + ids.ndim)``."""

    ids: np.ndarray
    dim: int

    def flat(self, dim: int | None = None) -> np.ndarray | None:
        """The ids as a 1-D channel array, when they are one (at ``dim`` if given)."""
        if self.ids.ndim != 1 or (dim is not None and self.dim != dim):
            return None
        return self.ids


@dataclass
class ParamSlice:
    """A parameter used directly (``get_attr``) whose ``axis`` follows a channel space."""

    target: str
    axis: int
    ids: np.ndarray
    users: set


class Walker:
    """Walks the fx graph once; results are read by :func:`channels.analyze`."""

    def __init__(self, gm: fx.GraphModule, splits: dict | None = None,
                 inexact_layernorm: bool = False):
        self.gm = gm
        self.inexact_layernorm = inexact_layernorm
        self.inexact: list = []                     # LayerNorms pruned by consent
        # head split node -> ((heads dim, head_dim dim), "heads" | "head_dims")
        self.splits = splits or {}
        self.units: dict = {}                       # element id -> unit of its attention
        self.uf = UnionFind()
        self.kinds: list[str] = []
        self.spaces: dict[str, Space] = {}
        self.pieces: dict[str, list] = {}            # split/chunk node -> Space per piece
        self.pins: dict[int, str] = {}
        self.calls: list[tuple] = []          # (node, kind, in ids, out ids) of layers
        self.params: dict[str, ParamSlice] = {}
        self.grids: list = []                        # channels viewed over several dims
        self.modules = dict(gm.named_modules())
        self.call_counts = _count_module_calls(gm)

    # ---- bookkeeping ------------------------------------------------------------------
    def fresh(self, n: int, kind: str) -> np.ndarray:
        self.kinds.extend([kind] * n)
        return self.uf.fresh(n)

    def pin(self, ids: np.ndarray | None, reason: str) -> None:
        if ids is not None:
            for e in ids.ravel().tolist():
                self.pins.setdefault(e, reason)

    def set_space(self, node: fx.Node, ids: np.ndarray, dim: int = 1) -> None:
        self.spaces[node.name] = Space(ids, dim)

    def space(self, node) -> Space | None:
        return self.spaces.get(node.name) if isinstance(node, fx.Node) else None

    def run(self) -> None:
        self.filter_params, self.weight_nodes = _computed_weights(self.gm)
        self.filter_ids: dict = {}
        for node in self.gm.graph.nodes:
            getattr(self, f"on_{node.op}")(node)
        self.check_params()
        self.settle_grids()

    def settle_grids(self) -> None:
        """A channel block viewed over several dims must lose whole slices along one of
        them, or the pruned tensor would not fit the view. A consumer may have chosen the
        dim already (a conv reading (C, H, W): C); otherwise the last dim shrinks and the
        leading ones (a channel shuffle's groups) stay."""
        for ids in self.grids:
            if _along_one_axis(self.uf, ids):
                continue
            for column in ids.reshape(-1, ids.shape[-1]).T:
                self.uf.union_all(column)

    # ---- node kinds -------------------------------------------------------------------
    def on_placeholder(self, node):
        shape = _shape(node)
        if shape is not None and len(shape) >= 2:
            ids = self.fresh(shape[1], "input")
            self.pin(ids, INPUT_REASON)
            self.set_space(node, ids)

    def on_get_attr(self, node):
        """Parameters get ids where an elementwise op shows which axis is channels — or, for
        the parameters a computed conv weight is made of (weight standardisation), their
        filter axis (dim 0) carries the conv's output channels from the start."""
        conv = self.filter_params.get(node.target)
        if conv is None:
            return None
        name, count = conv
        ids = self.filter_ids.setdefault(name, self.fresh(count, f"filters:{name}"))
        self.set_space(node, ids, 0)
        self.params[node.target] = ParamSlice(node.target, 0, ids,
                                              {u.name for u in node.users})

    def on_output(self, node):
        for src in _tensor_inputs(node):
            space = self.space(src)
            self.pin(space.ids if space else None, OUTPUT_REASON)
        for name, pieces in self.pieces.items():
            if any(n.name == name for n in _flat_nodes(node.args)):
                for piece in pieces:
                    self.pin(piece.ids, OUTPUT_REASON)

    def on_call_module(self, node):
        module = self.modules[node.target]
        if self.call_counts[node.target] > 1 and _has_state(module):
            return self.shared_call(node, module)
        handler = _MODULE_HANDLERS.get(type(module))
        if handler is None:
            handler = next((h for t, h in _MODULE_HANDLERS.items() if isinstance(module, t)), None)
        if handler is not None:
            return handler(self, node, module)
        if isinstance(module, ops.PASS_MODULES):
            return self.passthrough(node)
        if isinstance(module, ops.SPATIAL_MODULES):
            return self.spatial(node)
        return self.opaque(node, f"module '{node.target}' ({type(module).__name__}) is not "
                                 f"modelled")

    def touches_channels(self, node) -> bool:
        """Whether any input of ``node`` carries channels (a space, or split pieces).
        Ops on channel-less tensors (parameters, constants, sizes) leave no space."""
        return any(src.name in self.spaces or src.name in self.pieces
                   for src in _tensor_inputs(node))

    def on_call_function(self, node):
        handler = _FUNCTION_HANDLERS.get(node.target)
        if handler is not Walker.functional_layer and not self.touches_channels(node):
            return None
        if handler is not None:
            return handler(self, node)
        if node.target is getattr and _shape(node) is None:
            if node.args[1:] == ("shape",):
                self.size(node)
            return None
        if getattr(node.target, "__name__", "") == "stochastic_depth":
            return self.stochastic_depth(node)
        function = getattr(node.target, "autograd_function", None)
        if function is not None:
            return self.opaque(node, f"custom autograd.Function {function.__name__} (kept as "
                                     f"a call, so training uses its own backward)")
        return self.opaque(node, f"op {ops.describe(node)} is not modelled")

    def on_call_method(self, node):
        if not self.touches_channels(node):
            return None
        handler = _METHOD_HANDLERS.get(node.target)
        if handler is not None:
            return handler(self, node)
        if node.target in ops.SHAPE_METHODS:
            return None
        return self.opaque(node, f"op {ops.describe(node)} is not modelled")

    # ---- generic families ---------------------------------------------------------------
    def opaque(self, node, reason: str) -> None:
        """An op whose channel behaviour is unknown: pin everything it touches."""
        for src in _tensor_inputs(node):
            space = self.space(src)
            self.pin(space.ids if space else None, reason)
            for piece in self.pieces.get(src.name, ()):
                self.pin(piece.ids, reason)
        shape, first = _shape(node), _first_tensor(node)
        src = self.space(first)
        if shape is not None and len(shape) >= 2:
            # channels stay where the input had them (a channels-last LayerNorm, say)
            same = src is not None and _shape(first) == shape
            dim = src.dim if same and src.ids.ndim == 1 else 1
            ids = self.fresh(shape[dim], "opaque")
            self.pin(ids, reason)
            self.set_space(node, ids, dim)

    def passthrough(self, node) -> None:
        """Output channel i depends on input channel i alone (activations, pooling...)."""
        src = _first_tensor(node)
        space, shape, src_shape = self.space(src), _shape(node), _shape(src)
        if space is None or shape is None or src_shape is None:
            return self.opaque(node, f"op {ops.describe(node)} has no channel input")
        lo, hi = space.dim, space.dim + space.ids.ndim
        if len(shape) != len(src_shape) or shape[lo:hi] != src_shape[lo:hi]:
            return self.opaque(node, f"op {ops.describe(node)} changes the channel dimension")
        self.set_space(node, space.ids, space.dim)

    def shared_call(self, node, module) -> None:
        """A module with weights called several times: frozen, but a conv or linear is
        still a layer (each call's FLOPs count)."""
        reason = f"module '{node.target}' is called {self.call_counts[node.target]} times " \
                 f"(shared weights)"
        self.opaque(node, reason)
        kind = "conv" if isinstance(module, ops.CONV_MODULES) else \
            "linear" if isinstance(module, ops.LINEAR_MODULES) else None
        if kind is not None:
            size = module.in_channels if kind == "conv" else module.in_features
            self.add_call(node, kind, self.frozen_input(node, size, reason))

    def add_call(self, node, kind: str, in_ids, out_ids=None, name=None, module=None,
                 from_space: bool = True) -> None:
        """Record a layer; its output ids are the node's space unless given (or
        ``from_space`` is False); a functional layer comes with a name and a module
        describing it."""
        if out_ids is None and from_space:
            space = self.spaces.get(node.name)
            out_ids = space.flat() if space is not None else None
        self.calls.append((node, kind, in_ids, out_ids, name, module))

    def describe_with(self, module, attrs: list) -> None:
        """Give a describing module the real weight its layer computes from, so weight
        criteria score it (the first parameter of the weight's shape)."""
        shape = tuple(module.weight.shape)
        for attr in attrs:
            owner, _, field_name = attr.target.rpartition(".")
            tensor = getattr(self.gm.get_submodule(owner) if owner else self.gm, field_name)
            if tuple(tensor.shape) == shape:
                module.weight = nn.Parameter(tensor.detach(), requires_grad=False)
                return

    def standardised(self, node, module, args: dict, name: str) -> bool:
        """``F.conv2d(x, standardise(self.weight), self.bias)`` (NF-Nets, BiT): each filter
        is standardised over its own inputs, so whole filters go exactly; input channels
        would change every filter's statistics, so they stay."""
        weight = self.space(args.get("weight"))
        out = weight.flat(0) if weight is not None else None
        bias = args.get("bias")
        if out is None or len(out) != module.out_channels:
            return False
        if isinstance(bias, fx.Node) and not (bias.op == "get_attr" and
                                              self.param_slice(bias, 0, out, node)):
            return False
        reason = f"input channels of '{name}', a convolution whose filters are " \
                 f"standardised over their inputs"
        source = self.space(args.get("input"))
        self.pin(source.ids if source is not None else None, reason)
        in_ids = self.fresh(module.in_channels, f"in:{name}")
        self.pin(in_ids, reason)
        self.describe_with(module, _parameter_ancestors(args["weight"])[1])
        self.set_space(node, out)
        self.add_call(node, "conv", in_ids, out, name=name, module=module)
        return True

    def fixed_depthwise(self, node, module, args: dict, name: str) -> bool:
        """``F.conv2d(x, self.filt, groups=C)`` with one filter per channel (blur pooling,
        a fixed buffer or a parameter): channel-wise, so its filters are sliced with the
        channels and the literal group count follows the cut."""
        ids = self.channels_at_1(node)
        tensors = [args.get(k) for k in ("weight", "bias") if args.get(k) is not None]
        if ids is None or not (module.groups == module.in_channels == module.out_channels
                               == len(ids)):
            return False
        if not all(isinstance(t, fx.Node) and t.op == "get_attr" and len(t.users) == 1
                   for t in tensors):
            return False
        if not all(self.param_slice(t, 0, ids, node) for t in tensors):
            return False
        self.describe_with(module, tensors[:1])
        self.set_space(node, ids)
        position = 6 if len(node.args) > 6 else 99
        node.meta["pruneql.groups"] = ("groups", position, 1)
        self.add_call(node, "conv", ids, ids, name=name, module=module)
        return True

    def functional_layer(self, node) -> None:
        """``F.conv2d`` / ``F.linear`` left after modularize (a computed or shared weight):
        frozen, but a layer of the table, so its FLOPs count and the plan names it."""
        args = dict(zip(("input", "weight", "bias"), node.args), **node.kwargs)
        weight = args.get("weight")
        shape = _shape(weight)
        if shape is None:
            return self.opaque(node, f"op {ops.describe(node)} with an unknown weight")
        name = _functional_name(node, weight)
        kind, module = _describing_module(node, shape, args)
        if kind == "conv" and self.fixed_depthwise(node, module, args, name):
            return None
        if kind == "conv" and self.standardised(node, module, args, name):
            return None
        reason = f"{ops.describe(node)} with a weight PruneQL cannot slice ('{name}')"
        self.opaque(node, reason)
        in_ids = self.frozen_input(node, module.in_channels if kind == "conv"
                                   else module.in_features, reason)
        out = self.space(node)
        out = out.flat() if out is not None else None
        width = module.out_channels if kind == "conv" else module.out_features
        mine = out is not None and len(out) == width   # else: not this layer's features
        self.add_call(node, kind, in_ids, out if mine else None, name=name, module=module,
                      from_space=mine)

    def spatial(self, node) -> None:
        """Pooling, resizing, spatial padding: each channel of an (N, C, ...) tensor alone,
        which holds only when the channels are at dim 1."""
        space = self.space(_first_tensor(node))
        if space is not None and (space.dim != 1 or space.ids.ndim != 1):
            return self.opaque(node, f"op {ops.describe(node)} acts on dims that hold "
                                     f"channels (they are not at dim 1)")
        self.passthrough(node)

    def clamp(self, node) -> None:
        bounds = list(node.args[1:]) + [node.kwargs.get(k) for k in ("min", "max")]
        if any(isinstance(b, fx.Node) and _shape(b) is not None for b in bounds):
            return self.opaque(node, f"op {ops.describe(node)} with tensor bounds")
        self.passthrough(node)

    def softmax(self, node) -> None:
        src, shape = _first_tensor(node), _shape(node)
        space = self.space(src)
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        if space is None or shape is None or not isinstance(dim, int):
            return self.opaque(node, f"op {ops.describe(node)} over an unknown dimension")
        if space.dim <= dim % len(shape) < space.dim + space.ids.ndim:
            return self.opaque(node, f"op {ops.describe(node)} normalises over the channels")
        self.passthrough(node)

    def size(self, node) -> None:
        """``x.size(d)`` / ``x.shape``: a channel count used as a value (say, dividing by
        it) would change with pruning, so unless every use is a shape the channels stay."""
        space = self.space(_first_tensor(node))
        if space is None:
            return None
        rank = len(_shape(_first_tensor(node)) or ())
        channel_dims = set(range(space.dim, space.dim + space.ids.ndim))
        users = _channel_count_uses(node, rank, channel_dims)
        bad = [u for u in users if not _shape_use(u)]
        if bad:
            self.pin(space.ids, f"the channel count of '{_first_tensor(node).name}' is used "
                                f"as a number (by {ops.describe(bad[0])})")

    # ---- layers -------------------------------------------------------------------------
    def frozen_input(self, node, size: int, reason: str) -> np.ndarray:
        """A layer reading channels PruneQL cannot follow: its inputs are pinned, and it
        gets input ids of its own (pinned), so it is still a layer of the table."""
        for src in _tensor_inputs(node):
            space = self.space(src)
            self.pin(space.ids if space else None, reason)
        ids = self.fresh(size, f"in:{node.target}")
        self.pin(ids, reason)
        return ids

    def channels_at_1(self, node) -> np.ndarray | None:
        """The input's channel ids at dim 1 as one flat array. A space laid over several
        dims from dim 1 (a Linear's features viewed as (C, H, W)) is collapsed: the conv
        reads all of a channel's positions, so they go together."""
        space = self.space(_first_tensor(node))
        if space is None or space.dim != 1:
            return None
        if space.ids.ndim > 1:
            rows = space.ids.reshape(space.ids.shape[0], -1)
            for row in rows:
                self.uf.union_all(row)
            return rows[:, 0].copy()
        return space.ids

    def conv(self, node, conv) -> None:
        in_ids = self.channels_at_1(node)
        if in_ids is None:
            in_ids = self.frozen_input(node, conv.in_channels, f"convolution '{node.target}' "
                                       f"reads channels PruneQL cannot follow")
        if conv.groups == 1:
            out = self.fresh(conv.out_channels, f"out:{node.target}")
        elif conv.in_channels == conv.out_channels == conv.groups:
            out = in_ids            # depthwise: filter i reads and writes channel i
        else:
            out = self.fresh(conv.out_channels, f"out:{node.target}")
            self.tie_groups(conv.groups, in_ids, out)
        self.set_space(node, out)
        self.add_call(node, "conv", in_ids)

    def conv_transpose(self, node, conv) -> None:
        in_ids = self.channels_at_1(node)
        out = self.fresh(conv.out_channels, f"out:{node.target}")
        if in_ids is None or conv.groups != 1:
            reason = f"transposed convolution '{node.target}' " + (
                f"with groups={conv.groups}" if in_ids is not None else
                "reads channels PruneQL cannot follow")
            in_ids = self.frozen_input(node, conv.in_channels, reason)
            self.pin(out, reason)
        self.set_space(node, out)
        self.add_call(node, "convT", in_ids)

    def tie_groups(self, groups: int, *arrays) -> None:
        """Whole groups go together: group k of every array forms one class."""
        for k in range(groups):
            block = [a[k * (len(a) // groups):(k + 1) * (len(a) // groups)] for a in arrays]
            self.uf.union_all(np.concatenate(block))

    def linear(self, node, linear) -> None:
        src = _first_tensor(node)
        space, shape = self.space(src), _shape(node)
        last = len(shape) - 1 if shape else None
        in_ids = space.flat(last) if space else None
        if in_ids is not None:
            self.set_space(node, self.fresh(linear.out_features, f"out:{node.target}"), last)
            return self.add_call(node, "linear", in_ids)
        reason = f"Linear '{node.target}' reads features that are not channels"
        if space is not None and last is not None and space.dim + space.ids.ndim <= last:
            # it mixes a dimension after the channels (tokens): channels pass through, and
            # its own features belong to no channel space
            in_ids = self.fresh(linear.in_features, f"in:{node.target}")
            out = self.fresh(linear.out_features, f"out:{node.target}")
            self.pin(np.concatenate([in_ids, out]), reason)
            self.set_space(node, space.ids, space.dim)
            return self.add_call(node, "linear", in_ids, out)
        in_ids = self.frozen_input(node, linear.in_features, reason)
        if last is not None:
            self.set_space(node, self.fresh(linear.out_features, f"out:{node.target}"), last)
        self.add_call(node, "linear", in_ids)

    def norm(self, node, module) -> None:
        """Per-channel normalisation or affine: parameters are sliced with the channels."""
        flat = self.channels_at_1(node)
        if flat is not None and self.space(_first_tensor(node)).ids.ndim > 1:
            return self.set_space(node, flat) or self.add_call(node, "norm", flat)
        self.passthrough(node)
        space = self.space(node)
        if space is None or space.flat(1) is None:
            return self.opaque(node, f"norm '{node.target}' over a non-channel dimension")
        if isinstance(module, nn.GroupNorm):
            self.tie_groups(module.num_groups, space.ids)
        self.add_call(node, "norm", space.ids)

    def functional_norm(self, node) -> None:
        """``F.batch_norm(x, mean, var, weight, bias, ...)`` on tensors of the model: each
        per-channel tensor is sliced with the channels."""
        self.passthrough(node)
        space = self.space(node)
        tensors = [a for a in list(node.args[1:5]) + [node.kwargs.get(k) for k in (
            "running_mean", "running_var", "weight", "bias")] if isinstance(a, fx.Node)]
        ids = space.flat(1) if space is not None else None
        if ids is None or not all(self.per_channel(a, ids, node) for a in tensors):
            self.opaque(node, f"op {ops.describe(node)} on tensors PruneQL cannot slice")

    def per_channel(self, tensor, ids: np.ndarray, user) -> bool:
        """A norm's per-channel tensor: a parameter sliced with ``ids``, or a computed one
        carrying the same channels (a standardised weight's gain)."""
        if tensor.op == "get_attr" and tensor.target not in self.filter_params:
            return self.param_slice(tensor, 0, ids, user)
        space = self.space(tensor)
        flat = space.flat(0) if space is not None else None
        if flat is None or len(flat) != len(ids):
            return False
        self.uf.union_arrays(flat, ids)
        return True

    def layer_norm(self, node, module) -> None:
        shape = getattr(module, "normalized_shape", None)
        if shape is None:
            shape = node.args[1] if len(node.args) > 1 else node.kwargs.get("normalized_shape")
        shape = (shape,) if isinstance(shape, int) else shape
        if not isinstance(shape, (tuple, list)) or not all(isinstance(d, int) for d in shape):
            return self.opaque(node, "LayerNorm over a shape computed at run time")
        self.layer_norm_over(node, len(shape), module)

    def layer_norm_over(self, node, n_dims: int, module=None) -> None:
        space = self.space(_first_tensor(node))
        src_shape = _shape(_first_tensor(node))
        if space is not None and src_shape is not None and \
                space.dim + space.ids.ndim <= len(src_shape) - n_dims:
            return self.passthrough(node)   # normalises over dims after the channels only
        if self.inexact_layernorm and n_dims == 1 and space is not None and \
                space.flat(len(src_shape) - 1) is not None:
            return self.inexact_norm(node, module, space.ids)
        self.opaque(node, "LayerNorm over the channels (its statistics span all channels, "
                          "so removing one changes the others; `allow inexact layernorm` "
                          "prunes them anyway and measures the deviation)")

    def inexact_norm(self, node, module, ids: np.ndarray) -> None:
        """``allow inexact layernorm``: a LayerNorm over the channels loses channels like a
        per-channel norm; the result is not equivalent, and verify measures by how much."""
        self.passthrough(node)
        self.inexact.append(node.name)
        if module is not None:
            return self.add_call(node, "norm", ids)
        tensors = [a for a in list(node.args[2:4]) + [node.kwargs.get(k) for k in
                                                       ("weight", "bias")]
                   if isinstance(a, fx.Node)]
        if not all(a.op == "get_attr" and self.param_slice(a, 0, ids, node) for a in tensors):
            return self.opaque(node, "LayerNorm over the channels with a weight PruneQL "
                                     "cannot slice")
        node.meta["pruneql.ln_shape"] = True

    # ---- elementwise ----------------------------------------------------------------------
    def binary(self, node) -> None:
        shape = _shape(node)
        if shape is None or len(shape) < 2:
            return self.opaque(node, f"op {ops.describe(node)} has no channel output")
        spaced = [(a, self.space(a)) for a in _operands(node) if self.space(a) is not None]
        if not spaced:
            return self.opaque(node, f"op {ops.describe(node)} has no channel input")
        offsets = [(len(shape) - len(_shape(a)) + s.dim, s) for a, s in spaced]
        lead_dim, lead = max(offsets, key=lambda o: o[1].ids.size)
        for dim, space in offsets:
            if dim != lead_dim or space.ids.shape != lead.ids.shape:
                return self.opaque(node, f"op {ops.describe(node)} broadcasts one tensor's "
                                         f"channels over another's")
            self.uf.union_arrays(lead.ids, space.ids)
        for arg in _operands(node):
            if isinstance(arg, fx.Node) and self.space(arg) is None and _shape(arg) is not None:
                if not self.constant_along(node, arg, lead_dim, lead):
                    return self.opaque(node, f"op {ops.describe(node)} combines the channels "
                                             f"with a computed tensor that varies along them "
                                             f"(a rotary-embedding table, say); only "
                                             f"parameters can be sliced with channels")
        self.set_space(node, lead.ids, lead_dim)

    def constant_along(self, node, arg, dim: int, space: Space) -> bool:
        """Whether a channel-less operand is harmless here, or a per-channel parameter."""
        shape, arg_shape = _shape(node), _shape(arg)
        offset = len(shape) - len(arg_shape)
        axes = [d - offset for d in range(dim, dim + space.ids.ndim)]
        varying = [a for a in axes if a >= 0 and arg_shape[a] > 1]
        if not varying:
            return True
        if len(varying) > 1:
            return False
        ids = space.ids
        if ids.ndim > 1:        # per channel of a (C, H, W) space: C's positions go together
            if varying[0] != axes[0]:
                return False
            ids = ids.reshape(ids.shape[0], -1)
            for row in ids:
                self.uf.union_all(row)
            ids = ids[:, 0].copy()
        if arg.op == "get_attr":
            return self.param_slice(arg, varying[0], ids, node)
        return self.param_chain(arg, varying[0], ids, node)

    def param_chain(self, arg, axis: int, ids: np.ndarray, user) -> bool:
        """A per-channel parameter reshaped on its way (``self.scale.view(1, -1, 1, 1)``):
        the parameter is sliced along its channel axis, and the views on the way get the
        channel space, so literal sizes in them follow the cut."""
        chain = _view_chain(arg)
        if chain is None:
            return False
        root = chain[-1]
        root_shape = _shape(root)
        axes = [i for i, n in enumerate(root_shape) if n == len(ids)]
        if root_shape is None or len(axes) != 1 or math.prod(root_shape) != len(ids):
            return False
        if not self.param_slice(root, axes[0], ids, chain[-2] if len(chain) > 1 else user):
            return False
        for link in chain[:-1]:
            link_shape = _shape(link)
            dim = next(i for i, n in enumerate(link_shape) if n == len(ids))
            self.set_space(link, ids, dim)
            link.meta["pruneql.view"] = True
        return True

    def param_slice(self, attr_node, axis: int, ids: np.ndarray, user) -> bool:
        known = self.params.get(attr_node.target)
        if known is None:
            known = self.params[attr_node.target] = ParamSlice(
                attr_node.target, axis, self.fresh(len(ids), f"param:{attr_node.target}"),
                set())
        if known.axis != axis or len(known.ids) != len(ids):
            return False
        self.uf.union_arrays(known.ids, ids)
        known.users.add(user.name)
        return True

    def check_params(self) -> None:
        """A sliced parameter must have no use PruneQL did not account for."""
        for node in self.gm.graph.nodes:
            if node.op == "get_attr" and node.target in self.params:
                known = self.params[node.target]
                other = [u.name for u in node.users if u.name not in known.users]
                if other:
                    self.pin(known.ids, f"parameter '{node.target}' is also used by {other[0]}")

    # ---- composition ----------------------------------------------------------------------
    def cat(self, node) -> None:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        shape = _shape(node)
        if isinstance(tensors, (list, tuple)) and self.cat_of_constants(node, tensors, dim):
            return None
        spaces = [self.space(t) for t in tensors] if isinstance(tensors, (list, tuple)) else [None]
        if shape is None or any(s is None or s.flat() is None for s in spaces) or \
                len({s.dim for s in spaces}) != 1:
            return self.opaque(node, f"op {ops.describe(node)} of non-channel tensors")
        cdim = spaces[0].dim
        if dim % len(shape) == cdim:
            return self.set_space(node, np.concatenate([s.ids for s in spaces]), cdim)
        for other in spaces[1:]:
            self.uf.union_arrays(spaces[0].ids, other.ids)
        self.set_space(node, spaces[0].ids, cdim)

    def cat_of_constants(self, node, tensors, dim) -> bool:
        """``cat([cls_token.expand(…), tokens], dim=1)``: along a non-channel dim, operands
        without channels are parameters (or views of one) sliced with the channels."""
        spaced = [self.space(t) for t in tensors if self.space(t) is not None]
        bare = [t for t in tensors if isinstance(t, fx.Node) and self.space(t) is None]
        shape = _shape(node)
        if not spaced or not bare or shape is None or not isinstance(dim, int):
            return False
        first = spaced[0]
        if dim % len(shape) in range(first.dim, first.dim + first.ids.ndim) or \
                any(s.dim != first.dim or s.ids.shape != first.ids.shape for s in spaced):
            return False
        if not all(self.constant_along(node, t, first.dim + len(shape) - len(_shape(t)),
                                       first) for t in bare):
            return False
        for other in spaced[1:]:
            self.uf.union_arrays(first.ids, other.ids)
        self.set_space(node, first.ids, first.dim)
        return True

    def pad(self, node) -> None:
        src = _first_tensor(node)
        space, src_shape = self.space(src), _shape(src)
        pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        if space is None or space.flat() is None or not _static_ints(pad):
            return self.opaque(node, "op F.pad of a dynamic padding or non-channel tensor")
        pos = 2 * (len(src_shape) - 1 - space.dim)   # pad lists the last dimension first
        if len(pad) <= pos or (pad[pos] == 0 and pad[pos + 1] == 0):
            return self.passthrough(node)
        if mode != "constant" or pad[pos] < 0 or pad[pos + 1] < 0:
            return self.opaque(node, "op F.pad crops the channels or pads them with a "
                                     "non-constant mode")
        front, back = pad[pos], pad[pos + 1]
        ids = np.concatenate([self.fresh(front, "pad"), space.ids, self.fresh(back, "pad")])
        node.meta["pruneql.pad"] = (pos, front, back)
        self.set_space(node, ids, space.dim)

    def split(self, node) -> None:
        """``split``/``chunk``: pieces along the channels become spaces of their own."""
        src = _first_tensor(node)
        space, src_shape = self.space(src), _shape(src)
        how = node.args[1] if len(node.args) > 1 else node.kwargs.get(
            "split_size_or_sections", node.kwargs.get("split_size", node.kwargs.get("chunks")))
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        if space is None or src_shape is None or not isinstance(dim, int):
            return self.opaque(node, f"op {ops.describe(node)} of a non-channel tensor")
        chunk = node.target in ("chunk",) or node.target is torch.chunk
        sizes = _split_sizes(src_shape[dim % len(src_shape)], how, chunk)
        if sizes is None:
            return self.opaque(node, f"op {ops.describe(node)} with dynamic sizes")
        if dim % len(src_shape) != space.dim:
            self.pieces[node.name] = [space] * len(sizes)
            return None
        if space.flat() is None:
            return self.opaque(node, f"op {ops.describe(node)} of a reshaped channel dimension")
        bounds = np.cumsum([0] + sizes)
        self.pieces[node.name] = [Space(space.ids[a:b], space.dim)
                                  for a, b in zip(bounds[:-1], bounds[1:])]
        node.meta["pruneql.split"] = space.dim
        node.meta["pruneql.split.bounds"] = bounds.tolist()

    def getitem(self, node) -> None:
        src, index = node.args[0], node.args[1]
        if isinstance(src, fx.Node) and src.name in self.pieces and isinstance(index, int):
            piece = self.pieces[src.name][index]
            return self.set_space(node, piece.ids, piece.dim)
        space, shape = self.space(src), _shape(src)
        if space is None or shape is None:
            return self.opaque(node, "item of a value PruneQL does not model")
        index = _expanded(index if isinstance(index, tuple) else (index,), len(shape))
        if index is None:
            return self.opaque(node, "indexing by tensors or an index PruneQL cannot read")
        found = _indexed_dims(index, space)
        if found is None:
            return self.opaque(node, "indexing that moves or selects channels")
        position, out_dim = found
        node.args = (src, index) + tuple(node.args[2:])
        cut = index[position] if position is not None else slice(None)
        if cut == slice(None):
            return self.set_space(node, space.ids, out_dim)
        if space.flat() is None or not _static_slice(cut):
            return self.opaque(node, "slicing of the channels with a step or dynamic bounds")
        node.meta["pruneql.slice"] = position
        self.set_space(node, space.ids[cut], out_dim)

    def stack(self, node) -> None:
        """``torch.stack``: a new dim; the stacked tensors' channels go together."""
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        shape = _shape(node)
        spaces = [self.space(t) for t in tensors] if isinstance(tensors, (list, tuple)) \
            else [None]
        if shape is None or any(s is None for s in spaces) or \
                len({(s.dim, s.ids.shape) for s in spaces}) != 1 or not isinstance(dim, int):
            return self.opaque(node, f"op {ops.describe(node)} of non-channel tensors")
        for other in spaces[1:]:
            self.uf.union_arrays(spaces[0].ids, other.ids)
        first = spaces[0]
        shift = 1 if dim % len(shape) <= first.dim else 0
        self.set_space(node, first.ids, first.dim + shift)

    def unbind(self, node) -> None:
        """``unbind(d)``: pieces without dim d; along a channel axis of a multi-dim space,
        each piece keeps its slice of the ids."""
        src = _first_tensor(node)
        space, shape = self.space(src), _shape(src)
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if space is None or shape is None or not isinstance(dim, int):
            return self.opaque(node, f"op {ops.describe(node)} of a non-channel tensor")
        dim %= len(shape)
        lo, hi = space.dim, space.dim + space.ids.ndim
        if dim < lo or dim >= hi:
            piece = Space(space.ids, space.dim - (1 if dim < lo else 0))
            self.pieces[node.name] = [piece] * shape[dim]
        elif space.ids.ndim > 1:
            self.pieces[node.name] = [Space(np.take(space.ids, i, axis=dim - lo), lo)
                                      for i in range(shape[dim])]
        else:
            return self.opaque(node, f"op {ops.describe(node)} splits the channels apart")

    def expand(self, node) -> None:
        """``expand``: broadcasting size-1 dims; channel-wise while the channels stay."""
        self.passthrough(node)
        if self.space(node) is not None:
            node.meta["pruneql.view"] = True

    def stochastic_depth(self, node) -> None:
        """torchvision's ``stochastic_depth``: the identity in eval mode."""
        training = node.args[3] if len(node.args) > 3 else node.kwargs.get("training", True)
        if training is not False:
            return self.opaque(node, "stochastic_depth in training mode")
        self.passthrough(node)

    def functional_group_norm(self, node) -> None:
        """``F.group_norm(x, groups, weight, bias)``: whole groups go; the literal group
        count follows the cut."""
        groups = node.args[1] if len(node.args) > 1 else node.kwargs.get("num_groups")
        self.passthrough(node)
        space = self.space(node)
        ids = space.flat(1) if space is not None else None
        tensors = [a for a in list(node.args[2:4]) + [node.kwargs.get(k) for k in
                                                       ("weight", "bias")]
                   if isinstance(a, fx.Node)]
        if ids is None or not isinstance(groups, int) or not all(
                a.op == "get_attr" and self.param_slice(a, 0, ids, node) for a in tensors):
            return self.opaque(node, f"op {ops.describe(node)} on tensors PruneQL cannot "
                                     f"slice")
        self.tie_groups(groups, ids)
        node.meta["pruneql.groups"] = ("num_groups", 1, len(ids) // groups)

    def attention(self, node) -> None:
        """``scaled_dot_product_attention(q, k, v)``: q·kᵀ contracts the head dims of q and
        k, heads run side by side, the output has v's head dims. Heads view: q, k, v and the
        output share the heads (dim 1); head-dims view: q's and k's dims go together and
        the output carries v's."""
        q, k, v = (self.space(a) for a in node.args[:3])
        shape = _shape(node)
        if q is None or k is None or v is None or shape is None or \
                q.ids.ndim != 1 or len({q.dim, k.dim, v.dim}) != 1:
            return self.opaque(node, "attention whose heads PruneQL cannot follow")
        last = len(shape) - 1
        if q.dim == 1:
            self.tie_heads(q.ids, k.ids)
            self.tie_heads(q.ids, v.ids)
            return self.set_space(node, q.ids, 1)
        if q.dim == last and len(q.ids) == len(k.ids):
            self.uf.union_arrays(q.ids, k.ids)
            node.meta["pruneql.sdpa_scale"] = len(q.ids) ** -0.5
            return self.set_space(node, v.ids, last)
        return self.opaque(node, "attention whose heads PruneQL cannot follow")

    def tie_heads(self, a: np.ndarray, b: np.ndarray) -> None:
        """Tie head i of ``a`` with head i of ``b``, or with the key/value head serving it
        when ``b`` has fewer (grouped-query attention without repeat_kv)."""
        if len(a) == len(b):
            return self.uf.union_arrays(a, b)
        if len(b) and len(a) % len(b) == 0:
            return self.uf.union_arrays(a, np.repeat(b, len(a) // len(b)))
        self.pin(np.concatenate([a, b]), "attention with head counts PruneQL cannot match")

    def matmul(self, node) -> None:
        """``a @ b``: batch dims run side by side, ``a``'s last and ``b``'s second-to-last
        dims are contracted (tied), ``a``'s rows and ``b``'s columns carry through."""
        a, b = node.args[:2]
        sa, sb, shape = self.space(a), self.space(b), _shape(node)
        if shape is None or len(shape) < 2 or any(
                s is not None and s.ids.ndim != 1 for s in (sa, sb)):
            return self.opaque(node, f"op {ops.describe(node)} of channels PruneQL cannot "
                                     f"follow")
        out_rank = len(shape)
        roles = [_matmul_role(s, _shape(x), out_rank, first) for s, x, first in
                 ((sa, a, True), (sb, b, False))]
        if "?" in roles:
            return self.opaque(node, f"op {ops.describe(node)} of channels PruneQL cannot "
                                     f"follow")
        if roles[0] == roles[1] == "inner":
            self.uf.union_arrays(sa.ids, sb.ids)
            return None
        if roles[0] == roles[1] == "batch" and sa.dim - (len(_shape(a)) - out_rank) == \
                sb.dim - (len(_shape(b)) - out_rank):
            self.tie_heads(sa.ids, sb.ids)
            return self.set_space(node, sa.ids, sa.dim + out_rank - len(_shape(a)))
        carried = [(s, x, r) for s, x, r in ((sa, a, roles[0]), (sb, b, roles[1]))
                   if r in ("rows", "columns", "batch")]
        if len(carried) != 1 or any(r == "inner" for r in roles):
            return self.opaque(node, f"op {ops.describe(node)} mixes channels")
        s, x, role = carried[0]
        dim = {"rows": out_rank - 2, "columns": out_rank - 1}.get(
            role, s.dim + out_rank - len(_shape(x)))
        self.set_space(node, s.ids, dim)

    def triangle(self, node) -> None:
        """``triu``/``tril`` zero by position in the last two dims: channel-wise only when
        the channels are elsewhere."""
        space, shape = self.space(_first_tensor(node)), _shape(node)
        if space is not None and shape is not None and \
                space.dim + space.ids.ndim > len(shape) - 2:
            return self.opaque(node, f"op {ops.describe(node)} by position over the channels")
        self.passthrough(node)

    def constant_like(self, node) -> None:
        """``ones_like(x)`` and friends: constant values in ``x``'s shape — the shape
        follows the channels, the values do not depend on them."""
        space = self.space(_first_tensor(node))
        if space is not None and _shape(node) == _shape(_first_tensor(node)):
            self.set_space(node, space.ids, space.dim)

    def masked_fill(self, node) -> None:
        """``x.masked_fill(mask, value)``: channel-wise where the mask is a constant of
        ``x``'s shape or does not vary along the channels."""
        x, mask = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("mask")
        sx, sm = self.space(x), self.space(mask) if isinstance(mask, fx.Node) else None
        if sx is None:
            return None
        if sm is not None:
            if sm.dim != sx.dim or sm.ids.shape != sx.ids.shape:
                return self.opaque(node, "masked_fill with a mask over other channels")
            self.uf.union_arrays(sx.ids, sm.ids)
        elif isinstance(mask, fx.Node) and not self.constant_along(node, mask, sx.dim, sx):
            return self.opaque(node, "masked_fill with a mask that varies over the channels")
        self.set_space(node, sx.ids, sx.dim)

    def functional_embedding(self, node) -> None:
        """``F.embedding`` left after modularize (a weight shared with another layer, say a
        tied output layer): its features are frozen, at the last dim."""
        shape = _shape(node)
        if shape is None:
            return None
        ids = self.fresh(shape[-1], "embedding")
        self.pin(ids, "an embedding whose weight PruneQL cannot slice (shared with another "
                      "layer?)")
        self.set_space(node, ids, len(shape) - 1)

    def embedding(self, node, module) -> None:
        """``nn.Embedding``: its weight's columns are the output features (the hidden width
        of a language model)."""
        shape = _shape(node)
        if shape is None:
            return self.opaque(node, f"embedding '{node.target}' with an unknown output")
        out = self.fresh(module.embedding_dim, f"out:{node.target}")
        self.set_space(node, out, len(shape) - 1)
        self.add_call(node, "embedding", None, out)

    # ---- shape changes --------------------------------------------------------------------
    def reshape(self, node) -> None:
        src = _first_tensor(node)
        space, shape, src_shape = self.space(src), _shape(node), _shape(src)
        if space is None or shape is None or src_shape is None:
            return self.opaque(node, f"op {ops.describe(node)} of a non-channel tensor")
        found = _reshaped(space, src_shape, shape, batch=node.name not in self.weight_nodes)
        if found is None:
            return self.opaque(node, f"op {ops.describe(node)} reshapes the channels "
                                     f"{tuple(src_shape)} -> {tuple(shape)}")
        ids, dim = found
        if node.name in self.splits and ids.ndim > 1:
            return self.head_split(node, ids, dim)
        if ids.ndim > 1 and found[0] is not space.ids:
            self.grids.append(ids)
        node.meta["pruneql.view"] = True
        self.set_space(node, ids, dim)

    def head_split(self, node, ids: np.ndarray, dim: int) -> None:
        """A projection's features viewed as (…, heads, head_dim): the channel space is
        laid over the heads (each head's dims go together) or over the head dims (each dim
        goes in every head, q/k/v alike), as the block's view says; the other dims become
        plain dims."""
        (heads_dim, dims_dim), view = self.splits[node.name]
        keep_axis = (heads_dim if view == "heads" else dims_dim) - dim
        if not 0 <= keep_axis < ids.ndim:
            return self.opaque(node, f"op {ops.describe(node)} splits heads PruneQL cannot "
                                     f"place")
        moved = np.moveaxis(ids, keep_axis, 0).reshape(ids.shape[keep_axis], -1)
        for row in moved:
            self.uf.union_all(row)
        flat = moved[:, 0].copy()
        for e in flat.tolist():
            self.units[e] = view
        node.meta["pruneql.view"] = True
        self.set_space(node, flat, dim + keep_axis)

    def permute(self, node) -> None:
        src = _first_tensor(node)
        space, shape = self.space(src), _shape(src)
        order = _permutation(node, len(shape) if shape else 0)
        if space is None or order is None:
            return self.opaque(node, f"op {ops.describe(node)} of a non-channel tensor")
        where = [order.index(d) for d in range(space.dim, space.dim + space.ids.ndim)]
        if max(where) - min(where) != len(where) - 1:
            return self.opaque(node, f"op {ops.describe(node)} scatters the channel dims")
        self.set_space(node, space.ids.transpose(np.argsort(where)), min(where))

    def reduce(self, node) -> None:
        src = _first_tensor(node)
        space, src_shape = self.space(src), _shape(src)
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        dims = (dims,) if isinstance(dims, int) else dims
        if space is None or src_shape is None or not dims:
            return self.opaque(node, f"op {ops.describe(node)} reduces over the channels")
        dims = {d % len(src_shape) for d in dims}
        if dims & set(range(space.dim, space.dim + space.ids.ndim)):
            if self.rms_statistic(node, space, dims, keep):
                return None
            return self.opaque(node, f"op {ops.describe(node)} reduces over the channels")
        shift = 0 if keep else sum(d < space.dim for d in dims)   # reduced dims before it
        self.set_space(node, space.ids, space.dim - shift)

    def rms_statistic(self, node, space: Space, dims: set, keep) -> bool:
        """RMSNorm's ``mean(x², channels)`` feeding ``x * rsqrt(· + eps) * gain``: exact
        after pruning when the gain is scaled by √(n/n′) and eps by n/n′, which rewrite
        does; the statistic itself carries no channels."""
        found = _rms_pattern(node) if keep and space.ids.ndim == 1 and \
            dims == {space.dim} and node.target == "mean" else None
        if found is None:
            return False
        eps_node, gain = found
        if not self.param_slice(gain, _gain_axis(gain, space), space.ids, _gain_user(gain)):
            return False
        node.meta["pruneql.rms"] = {"eps": eps_node.name, "gain": gain.target,
                                    "channels": space.ids}
        return True


def _rms_pattern(mean) -> tuple | None:
    """(the ``+ eps`` node, the gain's get_attr) of ``x * rsqrt(mean(x²) + eps) * gain``
    (the float conversions HF's RMSNorm makes allowed), else None."""
    square = mean.args[0]
    if not (isinstance(square, fx.Node) and _is_square(square)) or len(mean.users) != 1:
        return None
    add = next(iter(mean.users))
    if add.target not in (operator.add, "add", torch.add) or len(add.users) != 1 or \
            not any(isinstance(a, (int, float)) for a in add.args):
        return None
    root = next(iter(add.users))
    if not (root.target in (torch.rsqrt, "rsqrt")) or len(root.users) != 1:
        return None
    scaled = next(iter(root.users))
    gain = _gain_of(scaled)
    return (add, gain) if gain is not None else None


def _is_square(node) -> bool:
    if node.target in (torch.pow, "pow", operator.pow):
        return len(node.args) > 1 and node.args[1] == 2
    return node.target in (operator.mul, "mul", torch.mul) and len(node.args) > 1 and \
        node.args[0] is node.args[1]


def _gain_of(node, hops: int = 3):
    """The get_attr parameter that multiplies ``node``'s result (through conversions)."""
    for _ in range(hops):
        if len(node.users) != 1:
            return None
        node = next(iter(node.users))
        if node.target in (operator.mul, "mul", torch.mul):
            attr = next((a for a in node.args if isinstance(a, fx.Node) and a.op == "get_attr"),
                        None)
            if attr is not None:
                return attr
        elif not (node.op == "call_method" and node.target in ("to", "type_as", "float")):
            return None
    return None


def _gain_axis(gain, space: Space) -> int:
    shape = _shape(gain)
    return len(shape) - 1 if shape else 0


def _gain_user(gain):
    return next(iter(gain.users))


def _functional_name(node, weight) -> str:
    """``owner.conv2d`` for ``F.conv2d(x, owner.weight)``; for a weight computed from
    ``owner.weight`` (a standardised conv's), ``owner``, the user's module; else the
    node's name."""
    fn = getattr(node.target, "__name__", "layer")
    if isinstance(weight, fx.Node) and weight.op == "get_attr":
        owner = weight.target.rpartition(".")[0]
        return f"{owner}.{fn}" if owner else fn
    found = _parameter_ancestors(weight) if isinstance(weight, fx.Node) else None
    roots = [a.target for a in found[1] if a.target.endswith("weight")] if found else []
    if len(roots) == 1 and roots[0].rpartition(".")[0]:
        return roots[0].rpartition(".")[0]
    return node.name


_CONV_OPTIONS = ("stride", "padding", "dilation", "groups")


def _describing_module(node, shape: tuple, args: dict) -> tuple:
    """(kind, a module on the meta device with the call's configuration)."""
    bias = args.get("bias") is not None
    if len(shape) == 2:
        return "linear", nn.Linear(shape[1], shape[0], bias=bias, device="meta")
    given = dict(zip(_CONV_OPTIONS, node.args[3:]), **{k: v for k, v in node.kwargs.items()
                                                         if k in _CONV_OPTIONS})
    given = {k: v for k, v in given.items() if not isinstance(v, fx.Node)}
    groups = given.get("groups", 1) if isinstance(given.get("groups", 1), int) else 1
    cls = {3: nn.Conv1d, 4: nn.Conv2d, 5: nn.Conv3d}[len(shape)]
    module = cls(shape[1] * groups, shape[0], shape[2:], bias=bias, device="meta",
                 **{k: v for k, v in given.items() if k != "groups"}, groups=groups)
    return "conv", module


def _channel_count_uses(node, rank: int, channel_dims: set) -> list:
    """Nodes that use a channel count read by the size query ``node`` (``x.size(1)``,
    ``x.shape[1]``, ``x.size()``), looking through indexing and integer arithmetic."""
    if node.op == "call_method" and (len(node.args) > 1 or "dim" in node.kwargs):
        dim = node.args[1] if len(node.args) > 1 else node.kwargs["dim"]
        return _int_uses(node) if isinstance(dim, int) and dim % max(rank, 1) \
            in channel_dims else []
    found = []
    for user in node.users:                    # a whole shape: which entries are read?
        index = user.args[1] if user.target is operator.getitem else None
        if isinstance(index, (int, slice)):
            read = range(rank)[index] if isinstance(index, slice) else [index % max(rank, 1)]
            if channel_dims & set(read):
                found += _int_uses(user)
        else:
            found.append(user)
    return found


def _int_uses(node) -> list:
    """Users of an integer value, looking through integer arithmetic."""
    found, todo, seen = [], list(node.users), set()
    while todo:
        user = todo.pop()
        if user in seen:
            continue
        seen.add(user)
        if user.op == "call_function" and user.target in _INT_OPS and _shape(user) is None:
            todo.extend(user.users)
        else:
            found.append(user)
    return found


_INT_OPS = {operator.getitem, operator.mul, operator.floordiv, operator.add, operator.sub,
            operator.mod, operator.truediv, int, math.prod}


def _shape_use(user) -> bool:
    """Whether ``user`` takes sizes only as a shape (recomputed after pruning)."""
    if user.op == "call_method":
        return user.target in ops.SHAPE_CONSUMER_METHODS
    return user.op == "call_function" and user.target in ops.SHAPE_CONSUMER_FUNCTIONS


_CHAIN_METHODS = {"view", "reshape", "unsqueeze", "squeeze", "flatten", "contiguous", "to",
                  "expand", "float", "half", "double"}


def _view_chain(node) -> list | None:
    """``[node, …, get_attr]`` when ``node`` is a parameter only viewed, scaled by a
    number or converted on its way (each link used once), else None."""
    chain = [node]
    while chain[-1].op != "get_attr":
        link = chain[-1]
        single = len(link.users) == 1 or link is node
        method = link.op == "call_method" and link.target in _CHAIN_METHODS
        scaled = link.op == "call_function" and link.target in (
            operator.mul, operator.truediv, torch.mul) and sum(
            isinstance(a, fx.Node) for a in link.args) == 1
        if not single or not (method or scaled) or not isinstance(link.args[0], fx.Node) \
                and not scaled:
            return None
        source = next(a for a in link.args if isinstance(a, fx.Node))
        chain.append(source)
    return chain if len(chain[-1].users) == 1 else None


def _along_one_axis(uf: UnionFind, ids: np.ndarray) -> bool:
    """Whether the classes of ``ids`` depend on its index along one axis only."""
    classes = uf.find_all(ids)
    for axis in range(ids.ndim):
        rows = np.moveaxis(classes, axis, 0).reshape(ids.shape[axis], -1)
        if (rows == rows[:, :1]).all():
            return True
    return False


_CONVS = {torch.nn.functional.conv1d, torch.nn.functional.conv2d,
          torch.nn.functional.conv3d}


def _computed_weights(gm: fx.GraphModule) -> tuple:
    """({param target: (conv node, filters)}, {node names of the computations}) for convs
    whose weight is computed from parameters alone (weight standardisation)."""
    params, nodes = {}, set()
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in _CONVS:
            continue
        weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
        if not isinstance(weight, fx.Node) or weight.op == "get_attr" or _shape(weight) is None:
            continue
        found = _parameter_ancestors(weight)
        if found is None:
            continue
        ancestors, attrs = found
        count = _shape(weight)[0]
        for attr in attrs:
            shape = _shape(attr)
            if shape and shape[0] == count and len(attr.users) <= 2:
                params[attr.target] = (node.name, count)
        nodes |= {a.name for a in ancestors}
    return params, nodes


def _parameter_ancestors(node) -> tuple | None:
    """(every ancestor, the get_attr ones) when ``node`` depends on parameters only."""
    seen, todo, attrs = set(), [node], []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current.op == "placeholder":
            return None
        if current.op == "get_attr":
            attrs.append(current)
        todo.extend(current.all_input_nodes)
    return seen, attrs


def _matmul_role(space, shape, out_rank: int, first: bool) -> str | None:
    """Where an operand's channels sit in a matmul: batch, rows (of the first), columns
    (of the second), inner (contracted), None (no channels) or ? (unknown)."""
    if space is None:
        return None
    if shape is None or len(shape) < 2:
        return "?"
    rank = len(shape)
    if space.dim < rank - 2:
        return "batch"
    if first:
        return "rows" if space.dim == rank - 2 else "inner"
    return "inner" if space.dim == rank - 2 else "columns"


def _expanded(index: tuple, rank: int) -> tuple | None:
    """``index`` with ``...`` spelled out as full slices; None for tensor indices."""
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice))) for i in index):
        return None
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    if used > rank or sum(i is Ellipsis for i in index) > 1:
        return None
    out: list = []
    for i in index:
        out += [slice(None)] * (rank - used) if i is Ellipsis else [i]
    return tuple(out)


def _indexed_dims(index: tuple, space: Space) -> tuple | None:
    """(position in ``index`` of the first channel dim or None, the channels' dim in the
    result), or None when the index removes a channel dim or splits the channel block."""
    lo, hi = space.dim, space.dim + space.ids.ndim
    in_dim = out_dim = 0
    position, start = None, None
    for k, item in enumerate(index):
        if item is None:
            if lo < in_dim < hi:
                return None
            out_dim += 1
            continue
        if lo <= in_dim < hi:
            if isinstance(item, int):
                return None
            if in_dim == lo:
                position, start = k, out_dim
            elif item != slice(None):
                return None
        in_dim += 1
        out_dim += 0 if isinstance(item, int) else 1
    if start is None:                     # the channels lie beyond the index
        start = lo - in_dim + out_dim
    return position, start


def _split_sizes(total: int, how, chunk: bool) -> list | None:
    if chunk and isinstance(how, int) and how > 0:
        size = math.ceil(total / how)
        return [min(size, total - i) for i in range(0, total, size)]
    if isinstance(how, int) and how > 0:
        return [min(how, total - i) for i in range(0, total, how)]
    if isinstance(how, (list, tuple)) and all(isinstance(s, int) for s in how):
        return list(how)
    return None


def _reshaped(space: Space, src: tuple, out: tuple, batch: bool = True):
    """Where the channel ids land after a view/reshape, or None if PruneQL cannot tell.

    The channels are located by element counts: ``before`` elements of leading dims, the
    channel block, ``after`` elements of trailing dims. They are kept as they are, merged
    with trailing dims (a flatten: each id repeats), or one channel dim is split in several
    (a channel shuffle's ``view(n, groups, c // groups, h, w)``).
    """
    lo, hi = space.dim, space.dim + space.ids.ndim
    before, width, rest = math.prod(src[:lo]), math.prod(src[lo:hi]), math.prod(src[hi:])
    # dim 0 is the batch: channels never move there (a batch of 1 would fit any count) —
    # except in a weight, whose dim 0 holds its filters
    starts = [j for j in range(0 if not batch else 1, len(out)) if math.prod(out[:j]) == before]
    for j in starts:
        if tuple(out[j:j + space.ids.ndim]) == space.ids.shape and \
                math.prod(out[j + space.ids.ndim:]) == rest:
            return space.ids, j                                  # kept as they are
    for first in range(1, lo):                                   # merged with earlier dims
        lead = math.prod(src[:first])
        for j in [j for j in range(1, len(out)) if math.prod(out[:j]) == lead]:
            if out[j] == math.prod(src[first:hi]) and tuple(out[j + 1:]) == tuple(src[hi:]):
                return np.tile(space.ids.ravel(), math.prod(src[first:lo])), j
    for j in starts:
        if out[j] == width and math.prod(out[j + 1:]) == rest:
            return space.ids.ravel(), j                          # channel dims merged
        for end in range(hi + 1, len(src) + 1):                  # merged with later dims
            if out[j] == math.prod(src[lo:end]) and tuple(out[j + 1:]) == tuple(src[end:]):
                return np.repeat(space.ids.ravel(), math.prod(src[hi:end])), j
    for j in starts:
        for end in range(j + 2, len(out) + 1):                   # split into several dims
            if space.ids.ndim == 1 and math.prod(out[j:end]) == width and \
                    math.prod(out[end:]) == rest:
                return space.ids.reshape(out[j:end]), j
    return None


def _permutation(node, ndim: int) -> list | None:
    args = [a for a in node.args[1:]]
    if node.target in ("transpose",) or node.target is torch.transpose:
        d0 = args[0] if args else node.kwargs.get("dim0")
        d1 = args[1] if len(args) > 1 else node.kwargs.get("dim1")
        if not (isinstance(d0, int) and isinstance(d1, int)):
            return None
        order = list(range(ndim))
        order[d0 % ndim], order[d1 % ndim] = order[d1 % ndim], order[d0 % ndim]
        return order
    dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
    dims = dims or node.kwargs.get("dims")
    if not dims or not all(isinstance(d, int) for d in dims) or len(dims) != ndim:
        return None
    return [d % ndim for d in dims]


def _count_module_calls(gm: fx.GraphModule) -> dict:
    counts: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            counts[node.target] = counts.get(node.target, 0) + 1
    return counts


def _has_state(module: nn.Module) -> bool:
    """Whether calling the module twice shares weights (a reused ReLU shares nothing)."""
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _shape(node) -> tuple | None:
    return node.meta.get("pruneql.shape") if isinstance(node, fx.Node) else None


def _flat_nodes(value) -> list:
    found: list = []
    fx.node.map_arg(value, found.append)
    return found


def _tensor_inputs(node) -> list:
    seen, out = set(), []
    for arg in _flat_nodes((node.args, node.kwargs)):
        if arg.name not in seen:
            seen.add(arg.name)
            out.append(arg)
    return out


def _first_tensor(node):
    return next((a for a in _tensor_inputs(node) if _shape(a) is not None), None)


def _operands(node) -> list:
    args = list(node.args[:2])
    for key in ("input", "other"):
        if key in node.kwargs:
            args.append(node.kwargs[key])
    return args


def _static_ints(value) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value)


def _static_slice(cut) -> bool:
    return isinstance(cut, slice) and cut.step in (None, 1) and all(
        v is None or isinstance(v, int) for v in (cut.start, cut.stop))


def _prelu(walker, node, module):
    if module.num_parameters == 1:
        return walker.passthrough(node)
    return walker.norm(node, module)


_MODULE_HANDLERS = {
    **{t: Walker.conv for t in ops.CONV_MODULES},
    **{t: Walker.conv_transpose for t in ops.CONV_TRANSPOSE_MODULES},
    **{t: Walker.linear for t in ops.LINEAR_MODULES},
    **{t: Walker.norm for t in ops.NORM_MODULES},
    nn.PReLU: _prelu,
    nn.LayerNorm: Walker.layer_norm,
    nn.Flatten: lambda w, node, m: w.reshape(node),
    nn.Embedding: Walker.embedding,
}
_FUNCTION_HANDLERS = {
    **{f: Walker.passthrough for f in ops.PASS_FUNCTIONS},
    torch.nn.functional.scaled_dot_product_attention: Walker.attention,
    **{f: Walker.matmul for f in (torch.matmul, operator.matmul)},
    **{f: Walker.constant_like for f in (torch.ones_like, torch.zeros_like, torch.full_like,
                                          torch.empty_like)},
    **{f: Walker.reshape for f in ops.RESHAPE_FUNCTIONS},
    **{f: Walker.stack for f in ops.STACK_FUNCTIONS},
    **{f: Walker.unbind for f in ops.UNBIND_FUNCTIONS},
    torch.nn.functional.group_norm: Walker.functional_group_norm,
    torch.nn.functional.embedding: lambda w, node: w.functional_embedding(node),
    **{f: Walker.spatial for f in ops.SPATIAL_FUNCTIONS},
    **{f: Walker.clamp for f in ops.CLAMP_FUNCTIONS},
    **{f: Walker.softmax for f in ops.SOFTMAX_FUNCTIONS},
    **{f: Walker.binary for f in ops.BINARY_FUNCTIONS},
    **{f: Walker.cat for f in ops.CAT_FUNCTIONS},
    **{f: Walker.reshape for f in ops.FLATTEN_FUNCTIONS},
    **{f: Walker.reduce for f in ops.REDUCE_FUNCTIONS},
    **{f: Walker.permute for f in ops.PERMUTE_FUNCTIONS},
    **{f: Walker.split for f in ops.SPLIT_FUNCTIONS},
    torch.nn.functional.pad: Walker.pad,
    torch.nn.functional.layer_norm: lambda w, node: w.layer_norm(node, None),
    torch.nn.functional.batch_norm: Walker.functional_norm,
    **{f: Walker.functional_layer for f in (torch.nn.functional.conv1d,
                                             torch.nn.functional.conv2d,
                                             torch.nn.functional.conv3d,
                                             torch.nn.functional.linear)},
    torch.nn.functional.instance_norm: Walker.functional_norm,
    operator.getitem: Walker.getitem,
}
_METHOD_HANDLERS = {
    **{m: Walker.passthrough for m in ops.PASS_METHODS},
    "matmul": Walker.matmul,
    "masked_fill": Walker.masked_fill,
    **{m: Walker.triangle for m in ("triu", "tril", "triu_", "tril_")},
    **{m: Walker.expand for m in ops.EXPAND_METHODS},
    **{m: Walker.unbind for m in ops.UNBIND_METHODS},
    **{m: Walker.clamp for m in ops.CLAMP_METHODS},
    **{m: Walker.softmax for m in ops.SOFTMAX_METHODS},
    **{m: Walker.size for m in ops.SIZE_METHODS},
    **{m: Walker.binary for m in ops.BINARY_METHODS},
    **{m: Walker.reshape for m in ops.RESHAPE_METHODS},
    **{m: Walker.reduce for m in ops.REDUCE_METHODS},
    **{m: Walker.permute for m in ops.PERMUTE_METHODS},
    **{m: Walker.split for m in ops.SPLIT_METHODS},
}
