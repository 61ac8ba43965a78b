"""Channel-dependency analysis of a traced model: classes, layers and groups.

:mod:`pruneql.graph.walk` gives every channel of every tensor an element id and ties ids
that must be removed together into *classes*. Here the layers (conv, linear, norm calls)
are collected, and producers (conv/linear layers) that write a common class are coupled in
a networkx graph whose connected components are the *groups* a recipe selects. A group
touching a pinned class is *frozen*, with the reason.

Removing a class and zeroing its channels in the original model are equivalent by
construction, which is what the verify pass checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from torch import fx, nn

from pruneql.graph.flops import batch_of
from pruneql.graph.walk import Walker


@dataclass
class Layer:
    """One call of a module that owns per-channel parameters (conv, linear, norm)."""

    name: str
    node: str
    kind: str                      # conv | convT | linear | norm | embedding
    module: nn.Module
    in_elems: np.ndarray | None
    out_elems: np.ndarray | None
    in_shape: tuple | None
    out_shape: tuple | None
    index: int | None = None       # Li et al.'s numbering: convs other than 1x1, 1-based
    more_calls: list = field(default_factory=list)   # (in, out shape) of later calls
    functional: bool = False       # an F.conv2d/F.linear call (frozen): module describes it
    batch: int = 1                 # the batch size the shapes were recorded at

    def attributes(self) -> dict:
        """The attributes a recipe's ``where`` predicate may test."""
        m = self.module
        kernel = getattr(m, "kernel_size", None)
        if isinstance(kernel, tuple):
            kernel = kernel[0] if len(set(kernel)) == 1 else kernel
        stride = getattr(m, "stride", None)
        if isinstance(stride, tuple):
            stride = stride[0] if len(set(stride)) == 1 else stride
        return {"kind": self.kind, "in_channels": width_of(self.in_elems),
                "out_channels": width_of(self.out_elems), "kernel": kernel, "stride": stride,
                "groups": getattr(m, "groups", 1), "flops": layer_flops(self),
                "params": sum(p.numel() for p in m.parameters(recurse=False)),
                "index": self.index}


def width_of(elems) -> int | None:
    """Channel count of an element-id array (None when absent)."""
    return None if elems is None else int(len(elems))


def layer_flops(layer: Layer, n_in: int | None = None, n_out: int | None = None) -> int:
    """Multiply-adds (per example) of a conv or linear layer with ``n_in``/``n_out``
    channels kept, summed over its calls."""
    total = _call_flops(layer, layer.in_shape, layer.out_shape, n_in, n_out)
    for in_shape, out_shape in layer.more_calls:
        total += _call_flops(layer, in_shape, out_shape, n_in, n_out)
    return total


def _call_flops(layer: Layer, in_shape, out_shape, n_in, n_out) -> int:
    if layer.kind not in ("conv", "convT", "linear") or out_shape is None:
        return 0     # an embedding looks rows up: no multiply-adds
    m = layer.module
    n_in = m.in_channels if layer.kind in ("conv", "convT") and n_in is None else n_in
    if layer.kind in ("conv", "convT") and n_out is None:
        n_out = out_shape[1]
    if layer.kind == "convT":       # every input pixel is scattered through the kernel
        spatial = int(np.prod(in_shape[2:]))
        return int(n_in * spatial * (n_out // m.groups) * int(np.prod(m.kernel_size)))
    if layer.kind == "conv":
        groups = groups_after(m, n_in)
        spatial = int(np.prod(out_shape[2:])) if len(out_shape) > 2 else 1
        return int(n_out * spatial * (n_in // groups) * int(np.prod(m.kernel_size)))
    n_in = m.in_features if n_in is None else n_in
    n_out = m.out_features if n_out is None else n_out
    # every row of a linear's input, per example: (B, T, C), or (B*T, C) after a view
    # that folds the tokens into the batch (Hugging Face's Conv1D)
    lead = max(1, int(np.prod(out_shape[:-1])) // max(1, layer.batch))
    return int(n_out * n_in * lead)


def groups_after(conv: nn.Module, n_in: int) -> int:
    """Groups left when a grouped conv keeps ``n_in`` inputs: it loses whole groups."""
    if conv.groups == 1:
        return 1
    return n_in // (conv.in_channels // conv.groups)


def layer_params(module, kind: str, n_in, n_out) -> int:
    """Parameter count of ``module`` with ``n_in``/``n_out`` channels (None: unchanged)."""
    own = {name: p.numel() for name, p in module.named_parameters(recurse=False)}
    if n_out is None and n_in is None:
        return sum(own.values())
    if kind == "norm":
        return sum(n_out for _ in own)
    if kind == "embedding":
        return module.num_embeddings * (module.embedding_dim if n_out is None else n_out)
    if kind == "convT":
        n_in = module.in_channels if n_in is None else n_in
        n_out = module.out_channels if n_out is None else n_out
        return n_in * (n_out // module.groups) * int(np.prod(module.kernel_size)) + \
            (n_out if "bias" in own else 0)
    if kind == "conv":
        n_in = module.in_channels if n_in is None else n_in
        per_filter = (n_in // groups_after(module, n_in)) * int(np.prod(module.kernel_size))
    else:
        per_filter = module.in_features if n_in is None else n_in
    n_out = module.weight.shape[0] if n_out is None else n_out
    return n_out * per_filter + (n_out if "bias" in own else 0)


PRODUCER_KINDS = ("conv", "convT", "linear", "embedding")


@dataclass
class Group:
    """Channels removed together: the classes produced by a set of coupled layers."""

    id: int
    classes: np.ndarray                  # class ids; channel j of the group is classes[j]
    producers: tuple                     # conv/linear layers whose filters make the channels
    members: tuple                       # every layer reading or writing the channels
    # producer -> the group channel position of each of its filters
    filters: dict = field(repr=False, default_factory=dict)
    frozen: str | None = None
    unit: str = "channels"               # or heads / head_dims: what a unit of it is

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
    spaces: dict                         # fx node name -> Space (element ids and their dim)
    classes: np.ndarray                  # element id -> class id
    pinned: dict                         # class id -> why it cannot be removed
    layers: dict                         # module name -> Layer
    groups: list
    params: dict = field(default_factory=dict)   # get_attr target -> ParamSlice
    inexact: list = field(default_factory=list)   # nodes pruned although not exact
    element_kinds: list = field(repr=False, default_factory=list)
    _class_spaces: tuple | None = field(repr=False, default=None)

    def kept(self, ids: np.ndarray, removed: np.ndarray) -> np.ndarray:
        """Which of the element ids ``ids`` survive when the classes marked in ``removed``
        go (the one place this mask is computed)."""
        return ~removed[self.classes[ids]]

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
        order = np.argsort(scores, kind="stable")
        cut = group.size - kept
        if cut <= 0:
            return np.zeros(0, dtype=np.int64)
        pair_class, pair_space, pair_count, per_space = self._pairs()
        touched = np.unique(pair_space[np.isin(pair_class, group.classes)])
        if (per_space[touched] > cut).all():      # no tensor can run out: take the lowest
            return np.sort(order[:cut])
        return self._careful_removal(group, order, cut)

    def _careful_removal(self, group: Group, order: np.ndarray, cut: int) -> np.ndarray:
        pair_class, pair_space, pair_count, _ = self._pairs()
        left = {name: space.ids.size for name, space in self.spaces.items()}
        names = list(self.spaces)
        chosen: list[int] = []
        for pos in order.tolist():
            if len(chosen) >= cut:
                break
            cls = int(group.classes[pos])
            lo, hi = np.searchsorted(pair_class, [cls, cls + 1])
            touched = [(names[sp], k) for sp, k in zip(pair_space[lo:hi].tolist(),
                                                       pair_count[lo:hi].tolist())]
            if all(left[space] > count for space, count in touched):
                for space, count in touched:
                    left[space] -= count
                chosen.append(pos)
        return np.sort(np.array(chosen, dtype=np.int64))

    def _pairs(self) -> tuple:
        """(class, space index, element count) for every class in every space, sorted by
        class; and the number of distinct classes per space. Built once, vectorised."""
        if self._class_spaces is None:
            spaces = list(self.spaces.values())
            sizes = [s.ids.size for s in spaces]
            cls = np.concatenate([self.classes[s.ids].ravel() for s in spaces])
            key = cls * len(spaces) + np.repeat(np.arange(len(spaces)), sizes)
            unique, counts = np.unique(key, return_counts=True)
            pair_space = unique % len(spaces)
            per_space = np.bincount(pair_space, minlength=len(spaces))
            self._class_spaces = (unique // len(spaces), pair_space, counts, per_space)
        return self._class_spaces

    def _spaces_of_class(self) -> dict:
        """Class id -> [(space name, element count)] (for the budget's incremental costs)."""
        pair_class, pair_space, pair_count, _ = self._pairs()
        names = list(self.spaces)
        found: dict[int, list] = {}
        for c, sp, k in zip(pair_class.tolist(), pair_space.tolist(), pair_count.tolist()):
            found.setdefault(c, []).append((names[sp], k))
        return found


def analyze(gm: fx.GraphModule, splits: dict | None = None,
            inexact_layernorm: bool = False) -> ChannelAnalysis:
    """Find the channel classes and prunable groups of a traced, shape-propagated module.

    >>> import torch
    >>> from pruneql.graph.trace import trace
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
    ...                           torch.nn.Conv2d(8, 4, 3))
    >>> a = analyze(trace(net, (torch.randn(1, 3, 8, 8),)))
    >>> [(g.producers, g.size, g.frozen) for g in a.groups]
    [(('0',), 8, None), (('2',), 4, 'reaches a model output')]
    """
    walker = Walker(gm, splits, inexact_layernorm)
    walker.run()
    classes = walker.uf.roots()
    pinned: dict[int, str] = {}
    for elem, reason in walker.pins.items():
        pinned.setdefault(int(classes[elem]), reason)
    layers = _collect_layers(walker, batch_of(gm))
    _number_layers(layers)
    groups = _build_groups(layers, classes, pinned)
    _label_units(groups, classes, walker.units)
    return ChannelAnalysis(gm=gm, spaces=walker.spaces, inexact=walker.inexact,
                           classes=classes, pinned=pinned, layers=layers, groups=groups,
                           params=walker.params, element_kinds=walker.kinds)


def _collect_layers(walker: Walker, batch: int) -> dict:
    """One Layer per module; a module called again adds the shapes of that call."""
    layers = {}
    for node, kind, in_ids, out_ids, name, module in walker.calls:
        src = next((a for a in node.all_input_nodes
                    if a.meta.get("pruneql.shape") is not None), None)
        in_shape = src.meta["pruneql.shape"] if src is not None else None
        out_shape = node.meta.get("pruneql.shape")
        name = name or node.target
        if name in layers:
            layers[name].more_calls.append((in_shape, out_shape))
            continue
        layers[name] = Layer(
            name=name, node=node.name, kind=kind,
            module=module if module is not None else walker.modules[node.target],
            in_elems=in_ids, out_elems=out_ids, in_shape=in_shape, out_shape=out_shape,
            functional=module is not None, batch=batch)
    return layers


def _number_layers(layers: dict) -> None:
    """Li et al.'s layer numbers: convolutions in order, 1x1 convs not counted."""
    index = 0
    for layer in layers.values():
        if layer.kind == "conv" and int(np.prod(layer.module.kernel_size)) > 1:
            index += 1
            layer.index = index


def _producers(layers: dict) -> list:
    return [l for l in layers.values() if l.kind in PRODUCER_KINDS and l.out_elems is not None]


def _build_groups(layers: dict, classes: np.ndarray, pinned: dict) -> list:
    """Producers sharing a class are coupled; connected producers form one group."""
    coupling = nx.Graph()
    producers = _producers(layers)
    owner = np.full(len(classes), -1, dtype=np.int64)    # the first producer of a class
    for i, layer in enumerate(producers):
        coupling.add_node(layer.name)
        written = np.unique(classes[layer.out_elems])
        owners = owner[written]
        owner[written[owners < 0]] = i
        for j in np.unique(owners[owners >= 0]).tolist():
            coupling.add_edge(producers[j].name, layer.name)
    order = {layer.name: i for i, layer in enumerate(producers)}
    components = sorted((sorted(c, key=order.get) for c in nx.connected_components(coupling)),
                        key=lambda c: order[c[0]])
    groups = [_make_group(i, names, layers, classes, pinned) for i, names in enumerate(components)]
    _add_members(groups, layers, classes)
    return groups


def _label_units(groups: list, classes: np.ndarray, units: dict) -> None:
    """Attention groups count heads or head dims, not channels."""
    by_class = {int(classes[e]): unit for e, unit in units.items()}
    for group in groups:
        found = {by_class[c] for c in group.classes.tolist() if c in by_class}
        if found:
            group.unit = found.pop() if len(found) == 1 else "mixed"


def _add_members(groups: list, layers: dict, classes: np.ndarray) -> None:
    """Every layer reading or writing a group's channels, found in one pass over layers."""
    group_of = np.full(len(classes), -1, dtype=np.int64)
    for group in groups:
        group_of[group.classes] = group.id
    members: dict[int, list] = {g.id: [] for g in groups}
    for layer in layers.values():
        touched = set()
        for elems in (layer.in_elems, layer.out_elems):
            if elems is not None:
                touched.update(np.unique(group_of[classes[elems]]).tolist())
        for gid in sorted(touched - {-1}):
            members[gid].append(layer.name)
    for group in groups:
        group.members = tuple(members[group.id])


def _make_group(gid: int, names: list, layers: dict, classes: np.ndarray, pinned: dict) -> Group:
    ordered: dict[int, int] = {}
    for name in names:
        for cls in classes[layers[name].out_elems].tolist():
            ordered.setdefault(cls, len(ordered))
    group_classes = np.fromiter(ordered, dtype=np.int64, count=len(ordered))
    filters = {n: np.array([ordered[c] for c in classes[layers[n].out_elems].tolist()])
               for n in names}
    reasons = sorted({pinned[c] for c in ordered if c in pinned})
    return Group(id=gid, classes=group_classes, producers=tuple(names), members=(),
                 filters=filters, frozen="; ".join(reasons) if reasons else None)
