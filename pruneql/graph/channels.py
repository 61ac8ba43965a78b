"""Channel-dependency analysis of a traced model.

Every tensor's channel dimension (dim 1) is a *space*; every channel of every space is an
*element* with an integer id (``node.meta['pruneql.channels']`` holds a node's ids). Ops
either reuse their input's ids (pass-through ops, depthwise convs), compose them (``cat``
concatenates, channel ``F.pad`` adds constant elements, ``flatten`` repeats each id H·W
times), or tie ids together (``add``/``mul`` of same-shaped tensors). Tied ids form one
*class*: a channel that can only be removed everywhere at once. Producers (conv/linear
outputs) own fresh ids; ops PruneQL does not model *pin* the classes they touch.

Removing a class and zeroing its channels in the original model are equivalent by
construction, which is what the verify pass checks.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import torch
from torch import fx, nn

from pruneql.graph import ops

INPUT_REASON = "model input"
OUTPUT_REASON = "reaches a model output"


class _UnionFind:
    """Disjoint sets over element ids, with path halving."""

    def __init__(self):
        self.parent: list[int] = []

    def fresh(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union_arrays(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def roots(self) -> np.ndarray:
        return np.array([self.find(x) for x in range(len(self.parent))], dtype=np.int64)


@dataclass
class Layer:
    """One call of a module that owns per-channel parameters (conv, linear, norm)."""

    name: str
    node: str
    kind: str                      # conv | linear | norm
    module: nn.Module
    in_elems: np.ndarray | None
    out_elems: np.ndarray | None
    in_shape: tuple | None
    out_shape: tuple | None
    index: int | None = None       # Li et al.'s numbering: convs other than 1x1, 1-based

    def attributes(self) -> dict:
        """The attributes a recipe's ``where`` predicate may test."""
        m = self.module
        kernel = getattr(m, "kernel_size", None)
        if isinstance(kernel, tuple):
            kernel = kernel[0] if len(set(kernel)) == 1 else kernel
        stride = getattr(m, "stride", None)
        if isinstance(stride, tuple):
            stride = stride[0] if len(set(stride)) == 1 else stride
        return {"kind": self.kind, "in_channels": _width(self.in_elems),
                "out_channels": _width(self.out_elems), "kernel": kernel, "stride": stride,
                "groups": getattr(m, "groups", 1), "flops": layer_flops(self),
                "params": sum(p.numel() for p in m.parameters(recurse=False)),
                "index": self.index}


def _width(elems) -> int | None:
    return None if elems is None else int(len(elems))


def layer_flops(layer: Layer, n_in: int | None = None, n_out: int | None = None) -> int:
    """Multiply-adds of a conv or linear call with ``n_in``/``n_out`` channels kept."""
    if layer.kind not in ("conv", "linear") or layer.out_shape is None:
        return 0
    m = layer.module
    n_in = m.in_channels if layer.kind == "conv" and n_in is None else n_in
    n_out = layer.out_shape[1] if n_out is None else n_out
    if layer.kind == "conv":
        groups = groups_after(m, n_in)
        spatial = int(np.prod(layer.out_shape[2:])) if len(layer.out_shape) > 2 else 1
        return int(n_out * spatial * (n_in // groups) * int(np.prod(m.kernel_size)))
    n_in = m.in_features if n_in is None else n_in
    lead = int(np.prod(layer.out_shape[1:-1])) if len(layer.out_shape) > 2 else 1
    return int(n_out * n_in * lead)


def groups_after(conv: nn.Module, n_in: int) -> int:
    """Groups left when a grouped conv keeps ``n_in`` inputs: it loses whole groups."""
    if conv.groups == 1:
        return 1
    return n_in // (conv.in_channels // conv.groups)


@dataclass
class Group:
    """Channels removed together: the classes produced by a set of coupled layers."""

    id: int
    classes: np.ndarray                  # class ids; channel j of the group is classes[j]
    producers: tuple                     # conv/linear layers whose filters make the channels
    members: tuple                       # every layer reading or writing the channels
    filters: dict = field(repr=False, default_factory=dict)  # producer -> channel position per filter
    frozen: str | None = None

    @property
    def size(self) -> int:
        return int(len(self.classes))

    @property
    def prunable(self) -> bool:
        return self.frozen is None and self.size > 1


@dataclass
class ChannelAnalysis:
    """The result of :func:`analyze`."""

    gm: fx.GraphModule
    graph: nx.DiGraph                    # spaces (fx node names) and how channels flow
    spaces: dict                         # fx node name -> element ids of its channel dim
    classes: np.ndarray                  # element id -> class id
    pinned: dict                         # class id -> why it cannot be removed
    layers: dict                         # module name -> Layer
    groups: list
    element_kinds: list = field(repr=False, default_factory=list)
    _class_spaces: dict | None = field(repr=False, default=None)

    def group_of(self, layer_name: str) -> Group | None:
        """The group whose channels ``layer_name`` produces, if any."""
        for group in self.groups:
            if layer_name in group.producers:
                return group
        return None

    def choose_removal(self, group: Group, scores: np.ndarray, kept: int) -> np.ndarray:
        """Positions of the group's lowest-scored channels to remove, ``size - kept`` of them.

        A channel is passed over when removing it would leave some tensor with no channels
        at all (say, every filter of one branch of a ``cat`` inside a residual group); the
        next lowest goes instead. Ties go to the lower position.
        """
        left = self._space_widths()
        spaces_of = self._spaces_of_class()
        chosen: list[int] = []
        for pos in np.argsort(scores, kind="stable").tolist():
            if len(chosen) >= group.size - kept:
                break
            touched = spaces_of.get(int(group.classes[pos]), ())
            if all(left[space] > count for space, count in touched):
                for space, count in touched:
                    left[space] -= count
                chosen.append(pos)
        return np.sort(np.array(chosen, dtype=np.int64))

    def _space_widths(self) -> dict:
        return {name: len(elems) for name, elems in self.spaces.items()}

    def _spaces_of_class(self) -> dict:
        if self._class_spaces is None:
            found: dict[int, list] = {}
            for name, elems in self.spaces.items():
                cls, counts = np.unique(self.classes[elems], return_counts=True)
                for c, k in zip(cls.tolist(), counts.tolist()):
                    found.setdefault(c, []).append((name, k))
            self._class_spaces = found
        return self._class_spaces

    def kept_positions(self, node_name: str, removed: np.ndarray) -> np.ndarray | None:
        """Indices of a space's channels that survive when classes ``removed`` go."""
        elems = self.spaces.get(node_name)
        if elems is None:
            return None
        return np.nonzero(~removed[self.classes[elems]])[0]


class _Analyzer:
    """Walks the fx graph once, giving every channel space its element ids."""

    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        self.uf = _UnionFind()
        self.kinds: list[str] = []
        self.spaces: dict[str, np.ndarray] = {}
        self.pins: dict[int, str] = {}
        self.graph = nx.DiGraph()
        self.layers: dict[str, Layer] = {}
        self.modules = dict(gm.named_modules())
        self.calls = _count_module_calls(gm)

    # ---- element bookkeeping --------------------------------------------------------
    def fresh(self, n: int, kind: str) -> np.ndarray:
        self.kinds.extend([kind] * n)
        return self.uf.fresh(n)

    def pin(self, elems: np.ndarray | None, reason: str) -> None:
        if elems is None:
            return
        for e in elems.tolist():
            self.pins.setdefault(e, reason)

    def set_space(self, node: fx.Node, elems: np.ndarray | None, rel: str = "") -> None:
        if elems is None:
            return
        self.spaces[node.name] = elems
        node.meta["pruneql.channels"] = elems
        self.graph.add_node(node.name, size=len(elems), op=ops.describe(node))
        for src in _tensor_inputs(node):
            if src.name in self.spaces:
                self.graph.add_edge(src.name, node.name, rel=rel)

    # ---- the walk -------------------------------------------------------------------
    def run(self) -> None:
        for node in self.gm.graph.nodes:
            handler = getattr(self, f"on_{node.op}")
            handler(node)

    def on_placeholder(self, node):
        shape = node.meta.get("pruneql.shape")
        if shape is not None and len(shape) >= 2:
            elems = self.fresh(shape[1], "input")
            self.pin(elems, INPUT_REASON)
            self.set_space(node, elems, "input")

    def on_get_attr(self, node):
        shape = node.meta.get("pruneql.shape")
        if shape is not None and len(shape) >= 2:
            elems = self.fresh(shape[1], "param")
            self.pin(elems, f"parameter '{node.target}' used directly")
            self.set_space(node, elems, "param")

    def on_output(self, node):
        for src in _tensor_inputs(node):
            self.pin(self.spaces.get(src.name), OUTPUT_REASON)

    def on_call_module(self, node):
        module = self.modules[node.target]
        if self.calls[node.target] > 1 and _has_state(module):
            return self.opaque(node, f"module '{node.target}' is called "
                                     f"{self.calls[node.target]} times (shared weights)")
        if isinstance(module, ops.CONV_MODULES):
            return self.conv(node, module)
        if isinstance(module, ops.LINEAR_MODULES):
            return self.linear(node, module)
        if isinstance(module, ops.NORM_MODULES):
            self.passthrough(node)
            return self.add_layer(node, "norm")
        if isinstance(module, ops.PASS_MODULES) or _is_scalar_prelu(module):
            return self.passthrough(node)
        if isinstance(module, nn.Flatten):
            return self.reshape(node)
        return self.opaque(node, f"module '{node.target}' ({type(module).__name__}) is not "
                                 f"modelled")

    def on_call_function(self, node):
        fn = node.target
        if fn in ops.PASS_FUNCTIONS:
            return self.passthrough(node)
        if fn in ops.BINARY_FUNCTIONS:
            return self.binary(node)
        if fn in ops.CAT_FUNCTIONS:
            return self.cat(node)
        if fn in ops.FLATTEN_FUNCTIONS:
            return self.reshape(node)
        if fn in ops.REDUCE_FUNCTIONS:
            return self.reduce(node)
        if fn in ops.PAD_FUNCTIONS:
            return self.pad(node)
        if fn is operator.getitem:
            return self.getitem(node)
        if fn is getattr and node.meta.get("pruneql.shape") is None:
            return None
        return self.opaque(node, f"op {ops.describe(node)} is not modelled")

    def on_call_method(self, node):
        name = node.target
        if name in ops.PASS_METHODS:
            return self.passthrough(node)
        if name in ops.BINARY_METHODS:
            return self.binary(node)
        if name in ops.RESHAPE_METHODS:
            return self.reshape(node)
        if name in ops.REDUCE_METHODS:
            return self.reduce(node)
        if name in ops.SHAPE_METHODS:
            return None
        return self.opaque(node, f"op {ops.describe(node)} is not modelled")

    # ---- op families ----------------------------------------------------------------
    def opaque(self, node, reason: str) -> None:
        """An op whose channel behaviour is unknown: pin everything it touches."""
        for src in _tensor_inputs(node):
            self.pin(self.spaces.get(src.name), reason)
        shape = node.meta.get("pruneql.shape")
        if shape is not None and len(shape) >= 2:
            elems = self.fresh(shape[1], "opaque")
            self.pin(elems, reason)
            self.set_space(node, elems, "opaque")

    def passthrough(self, node) -> None:
        src = _first_tensor(node)
        shape, src_shape = node.meta.get("pruneql.shape"), _shape(src)
        if src is None or src.name not in self.spaces or shape is None:
            return self.opaque(node, f"op {ops.describe(node)} has no channel input")
        if len(shape) < 2 or src_shape is None or shape[1] != src_shape[1]:
            return self.opaque(node, f"op {ops.describe(node)} changes the channel dimension")
        self.set_space(node, self.spaces[src.name], "same")

    def conv(self, node, conv) -> None:
        src = _first_tensor(node)
        in_elems = self.spaces.get(src.name)
        if conv.groups == 1:
            out = self.fresh(conv.out_channels, f"out:{node.target}")
        elif conv.in_channels == conv.out_channels == conv.groups:
            out = in_elems          # depthwise: filter i reads and writes channel i
        else:
            out = self.fresh(conv.out_channels, f"out:{node.target}")
            self.tie_groups(in_elems, out, conv.groups)
        self.set_space(node, out, "conv" if conv.groups == 1 else "grouped")
        self.add_layer(node, "conv", in_elems)

    def tie_groups(self, in_elems, out_elems, groups: int) -> None:
        """A grouped conv loses whole groups: group k's inputs and outputs form one class."""
        a, b = len(in_elems) // groups, len(out_elems) // groups
        for k in range(groups):
            block = np.concatenate([in_elems[k * a:(k + 1) * a], out_elems[k * b:(k + 1) * b]])
            self.uf.union_arrays(block[:1].repeat(len(block) - 1), block[1:])

    def linear(self, node, linear) -> None:
        src = _first_tensor(node)
        shape = node.meta.get("pruneql.shape")
        if shape is None or len(shape) != 2:
            reason = f"Linear '{node.target}' over a non-channel dimension"
            self.opaque(node, reason)
            return self.add_layer(node, "linear", None)
        in_elems = self.spaces.get(src.name)
        self.set_space(node, self.fresh(linear.out_features, f"out:{node.target}"), "linear")
        self.add_layer(node, "linear", in_elems)

    def add_layer(self, node, kind: str, in_elems=None) -> None:
        src = _first_tensor(node)
        in_elems = self.spaces.get(src.name) if in_elems is None and src is not None else in_elems
        self.layers[node.target] = Layer(
            name=node.target, node=node.name, kind=kind, module=self.modules[node.target],
            in_elems=in_elems, out_elems=self.spaces.get(node.name), in_shape=_shape(src),
            out_shape=node.meta.get("pruneql.shape"))

    def binary(self, node) -> None:
        shape = node.meta.get("pruneql.shape")
        if shape is None or len(shape) < 2:
            return self.opaque(node, f"op {ops.describe(node)} has no channel output")
        carried = []
        for arg in _operands(node):
            arg_shape = _shape(arg) if isinstance(arg, fx.Node) else None
            role = _broadcast_role(arg_shape, shape)
            if role == "channels" and arg.name in self.spaces:
                carried.append(self.spaces[arg.name])
            elif role in ("channels", "unknown"):
                return self.opaque(node, f"op {ops.describe(node)} broadcasts a tensor "
                                         f"over the channels")
        if not carried:
            return self.opaque(node, f"op {ops.describe(node)} has no channel input")
        for other in carried[1:]:
            self.uf.union_arrays(carried[0], other)
        self.set_space(node, carried[0], "couple")

    def cat(self, node) -> None:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        shape = node.meta.get("pruneql.shape")
        parts = [self.spaces.get(t.name) if isinstance(t, fx.Node) else None for t in tensors]
        if shape is None or len(shape) < 2 or any(p is None for p in parts):
            return self.opaque(node, f"op {ops.describe(node)} of non-channel tensors")
        if dim % len(shape) == 1:
            return self.set_space(node, np.concatenate(parts), "cat")
        for other in parts[1:]:
            self.uf.union_arrays(parts[0], other)
        self.set_space(node, parts[0], "couple")

    def reshape(self, node) -> None:
        src = _first_tensor(node)
        shape, src_shape = node.meta.get("pruneql.shape"), _shape(src)
        elems = self.spaces.get(src.name) if src is not None else None
        if elems is None or shape is None or src_shape is None or len(shape) < 2:
            return self.opaque(node, f"op {ops.describe(node)} merges the channel dimension")
        if shape[0] == src_shape[0] and shape[1] == src_shape[1]:
            return self.set_space(node, elems, "same")
        inner = int(np.prod(src_shape[2:])) if len(src_shape) > 2 else 1
        if shape[0] == src_shape[0] and len(shape) == 2 and shape[1] == src_shape[1] * inner:
            node.meta["pruneql.flatten"] = inner
            return self.set_space(node, np.repeat(elems, inner), "flatten")
        return self.opaque(node, f"op {ops.describe(node)} reshapes the channel dimension "
                                 f"{src_shape} -> {shape}")

    def reduce(self, node) -> None:
        src = _first_tensor(node)
        shape, src_shape = node.meta.get("pruneql.shape"), _shape(src)
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = (dims,) if isinstance(dims, int) else dims
        if (dims is None or src_shape is None or shape is None or len(shape) < 2
                or any(d % len(src_shape) <= 1 for d in dims)):
            return self.opaque(node, f"op {ops.describe(node)} reduces over the channels")
        self.passthrough(node)

    def pad(self, node) -> None:
        src = _first_tensor(node)
        src_shape = _shape(src)
        pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        if src_shape is None or src.name not in self.spaces or not _static_ints(pad):
            return self.opaque(node, "op F.pad with a dynamic padding")
        channel_pos = 2 * (len(src_shape) - 2)   # pad lists the last dimension first
        if len(pad) <= channel_pos:
            return self.passthrough(node)
        if len(pad) > channel_pos + 2 or mode != "constant":
            return self.opaque(node, "op F.pad pads the batch dimension or not with a constant")
        front, back = pad[channel_pos], pad[channel_pos + 1]
        if front < 0 or back < 0:
            return self.opaque(node, "op F.pad crops the channel dimension")
        elems = np.concatenate([self.fresh(front, "pad"), self.spaces[src.name],
                                self.fresh(back, "pad")])
        node.meta["pruneql.pad"] = (channel_pos, front, back)
        self.set_space(node, elems, "pad")

    def getitem(self, node) -> None:
        src, index = node.args[0], node.args[1]
        if not isinstance(src, fx.Node) or src.name not in self.spaces:
            return self.opaque(node, f"item of {ops.describe(src) if isinstance(src, fx.Node) else 'a value'}")
        index = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis or i is None or isinstance(i, (int, fx.Node)) for i in index[:2]):
            return self.opaque(node, "indexing that moves the channel dimension")
        if len(index) > 1 and index[1] != slice(None):
            return self.opaque(node, "slicing of the channel dimension")
        if index[0] != slice(None):
            return self.opaque(node, "slicing of the batch dimension")
        self.passthrough(node)


def _count_module_calls(gm: fx.GraphModule) -> dict:
    counts: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            counts[node.target] = counts.get(node.target, 0) + 1
    return counts


def _has_state(module: nn.Module) -> bool:
    """Whether calling the module twice shares weights (a reused ReLU shares nothing)."""
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _is_scalar_prelu(module) -> bool:
    return isinstance(module, nn.PReLU) and module.num_parameters == 1


def _shape(node) -> tuple | None:
    return node.meta.get("pruneql.shape") if isinstance(node, fx.Node) else None


def _flat_nodes(value) -> list:
    found: list = []
    fx.node.map_arg(value, found.append)
    return found


def _tensor_inputs(node) -> list:
    seen, out = set(), []
    for arg in _flat_nodes((node.args, node.kwargs)):
        if arg.name not in seen and arg.meta.get("pruneql.shape") is not None:
            seen.add(arg.name)
            out.append(arg)
    return out


def _first_tensor(node):
    inputs = _tensor_inputs(node)
    return inputs[0] if inputs else None


def _operands(node) -> list:
    args = list(node.args[:2])
    for key in ("input", "other"):
        if key in node.kwargs:
            args.append(node.kwargs[key])
    return args


def _broadcast_role(arg_shape, out_shape) -> str:
    """How an operand of an elementwise op relates to the output's channels.

    ``channels``: it has the output's channel dim one to one; ``none``: it is constant
    along the channels (scalar or size-1 there); ``unknown``: it varies along the
    channels without being a channel tensor of the same rank.
    """
    if arg_shape is None:
        return "none"
    offset = len(out_shape) - len(arg_shape)
    pos = 1 - offset
    if pos < 0 or arg_shape[pos] == 1 or out_shape[1] == 1:
        return "none"
    return "channels" if offset == 0 else "unknown"


def _static_ints(value) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value)


def analyze(gm: fx.GraphModule) -> ChannelAnalysis:
    """Find the channel classes and prunable groups of a traced, shape-propagated module.

    >>> import torch
    >>> from pruneql.graph.trace import trace
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
    ...                           torch.nn.Conv2d(8, 4, 3))
    >>> a = analyze(trace(net, (torch.randn(1, 3, 8, 8),)))
    >>> [(g.producers, g.size, g.frozen) for g in a.groups]
    [(('0',), 8, None), (('2',), 4, 'reaches a model output')]
    """
    walker = _Analyzer(gm)
    walker.run()
    classes = walker.uf.roots()
    pinned: dict[int, str] = {}
    for elem, reason in walker.pins.items():
        pinned.setdefault(int(classes[elem]), reason)
    _number_layers(walker.layers)
    groups = _build_groups(walker.layers, classes, pinned)
    return ChannelAnalysis(gm=gm, graph=walker.graph, spaces=walker.spaces, classes=classes,
                           pinned=pinned, layers=walker.layers, groups=groups,
                           element_kinds=walker.kinds)


def _number_layers(layers: dict) -> None:
    """Li et al.'s layer numbers: convolutions in order, 1x1 convs not counted."""
    index = 0
    for layer in layers.values():
        if layer.kind == "conv" and int(np.prod(layer.module.kernel_size)) > 1:
            index += 1
            layer.index = index


def _producers(layers: dict) -> list:
    return [l for l in layers.values() if l.kind in ("conv", "linear") and l.out_elems is not None]


def _build_groups(layers: dict, classes: np.ndarray, pinned: dict) -> list:
    """Producers sharing a class are coupled; connected producers form one group."""
    coupling = nx.Graph()
    owner: dict[int, str] = {}
    producers = _producers(layers)
    for layer in producers:
        coupling.add_node(layer.name)
        for cls in np.unique(classes[layer.out_elems]).tolist():
            if cls in owner:
                coupling.add_edge(owner[cls], layer.name)
            else:
                owner[cls] = layer.name
    order = {layer.name: i for i, layer in enumerate(producers)}
    components = sorted((sorted(c, key=order.get) for c in nx.connected_components(coupling)),
                        key=lambda c: order[c[0]])
    return [_make_group(i, names, layers, classes, pinned) for i, names in enumerate(components)]


def _make_group(gid: int, names: list, layers: dict, classes: np.ndarray, pinned: dict) -> Group:
    ordered: dict[int, int] = {}
    for name in names:
        for cls in classes[layers[name].out_elems].tolist():
            ordered.setdefault(cls, len(ordered))
    group_classes = np.fromiter(ordered, dtype=np.int64, count=len(ordered))
    filters = {n: np.array([ordered[c] for c in classes[layers[n].out_elems].tolist()])
               for n in names}
    members = [l.name for l in layers.values() if _touches(l, classes, ordered)]
    reasons = sorted({pinned[c] for c in ordered if c in pinned})
    return Group(id=gid, classes=group_classes, producers=tuple(names), members=tuple(members),
                 filters=filters, frozen="; ".join(reasons) if reasons else None)


def _touches(layer: Layer, classes: np.ndarray, wanted: dict) -> bool:
    for elems in (layer.in_elems, layer.out_elems):
        if elems is not None and any(c in wanted for c in np.unique(classes[elems]).tolist()):
            return True
    return False
