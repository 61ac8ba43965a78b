"""Activation criteria, measured where Molchanov et al. measure them: the feature map after
the nonlinearity.

A producer's *activated output* is the end of the elementwise chain right after it (its
BatchNorm, activation, dropout...), before any pooling, addition or concatenation: the
chain is followed while a node has a single user that maps each channel element to
itself (:data:`ELEMENTWISE_MODULES` and friends). For conv -> BN -> ReLU -> max-pool it is
the ReLU's output, not the pooled map the next conv reads. A unit written by several
producers (a residual stream) averages the statistic over them.

``activation(stat=mean)``: the mean of the map over examples and positions.
``activation(stat=std)``: its standard deviation over examples and positions (the
paper's per-map spread; pooled over examples because a fully connected layer has a
single position, where a per-example spread would be zero).
:func:`mutual_information`: MI between a unit's per-example mean activation, quantised
into equally populated bins, and the class label (not declared as a recipe criterion;
the criteria study uses it).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from pruneql.criteria.base import Job, Scored
from pruneql.criteria.evaluation import Reader, device_of, evaluating, local_index, split, xy
from pruneql.graph import ops
from pruneql.lang.criteria import register

ELEMENTWISE_MODULES = ops.NORM_MODULES + ops.PASS_MODULES + (nn.PReLU,)
ELEMENTWISE_FUNCTIONS = ops.PASS_FUNCTIONS | {F.batch_norm, F.instance_norm, F.prelu}
ELEMENTWISE_METHODS = ops.PASS_METHODS


@register("activation")
def activation(job: Job, *, stat: str) -> Scored:
    """Mean or standard deviation of each unit's activated output."""
    if stat not in ("mean", "std"):
        raise ValueError(f"activation stat must be mean or std, got {stat!r}")
    moments = _Moments(job)
    _run(job, moments)
    return Scored(moments.result(stat))


def mutual_information(job: Job, *, bins: int = 2) -> Scored:
    """MI (in nats) between each unit's per-example mean activation, quantised into
    ``bins`` equally populated bins (2: split at the median), and the class label;
    plug-in estimate over the job's examples."""
    means = _Means(job)
    _run(job, means)
    labels = np.concatenate([np.asarray(y).ravel() for _, y in job.batches])
    per_unit = means.result()
    if per_unit.shape[0] != len(labels):        # nothing tapped: no activation to relate
        per_unit = np.zeros((len(labels), means.width))
    scores = np.array([quantised_mi(per_unit[:, j], labels, bins)
                       for j in range(per_unit.shape[1])])
    scores[means.unread] = 0.0
    return Scored(split(scores, job.groups, means.offsets))


def quantised_mi(values: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """MI (nats) between ``values`` cut into ``bins`` equally populated bins and ``labels``
    (quantile edges; values equal to an edge fall below it, so a ReLU's zeros share a bin).

    >>> round(quantised_mi(np.array([0., 0., 1., 1.]), np.array([0, 0, 1, 1]), 2), 6)
    0.693147
    >>> quantised_mi(np.array([0., 1., 0., 1.]), np.array([0, 0, 1, 1]), 2)
    0.0
    """
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    q = np.searchsorted(edges, values, side="left")     # a tie with an edge goes below it
    _, y = np.unique(labels, return_inverse=True)
    joint = np.zeros((q.max() + 1, y.max() + 1))
    np.add.at(joint, (q, y), 1.0)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(max(0.0, np.sum(joint[nz] * np.log(joint[nz] / outer[nz]))))


# ------------------------------------------------------------------- where it is read

def activated_output(gm: fx.GraphModule, node_name: str) -> fx.Node:
    """The end of the elementwise chain that starts at node ``node_name``.

    >>> from pruneql.graph.trace import trace
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.ReLU(),
    ...                     nn.MaxPool2d(2), nn.Conv2d(2, 1, 1))
    >>> gm = trace(net, (torch.ones(1, 1, 4, 4),))
    >>> activated_output(gm, "_0").name
    '_2'
    """
    node = next(n for n in gm.graph.nodes if n.name == node_name)
    modules = dict(gm.named_modules())
    while len(node.users) == 1:
        user = next(iter(node.users))
        if not user.args or user.args[0] is not node or not _elementwise(user, modules) \
                or user.meta.get("pruneql.shape") != node.meta.get("pruneql.shape"):
            break
        node = user
    return node


def _elementwise(node: fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], ELEMENTWISE_MODULES)
    if node.op == "call_function":
        return node.target in ELEMENTWISE_FUNCTIONS
    return node.op == "call_method" and node.target in ELEMENTWISE_METHODS


class _Taps:
    """Readers on the activated outputs of the scored groups' producers."""

    def __init__(self, job: Job):
        analysis = job.analysis
        self.groups = job.groups
        local, self.offsets, self.width = local_index(analysis, job.groups)
        device = device_of(job.model)
        self.readers: dict = {}
        self.dims: dict = {}
        for group in job.groups:
            for name in group.producers:
                end = activated_output(job.model, analysis.layers[name].node)
                space = analysis.spaces.get(end.name)
                if space is None or end.name in self.readers:
                    continue
                ids = space.ids.ravel()
                self.readers[end.name] = Reader(analysis.classes[ids], local, self.width,
                                                device)
                self.dims[end.name] = (space.dim, space.ids.ndim)
        # units no tap reads, or already removed, score 0
        self.unread = np.concatenate([job.gone(g) for g in job.groups])
        read = np.zeros(self.width, dtype=bool)
        for reader in self.readers.values():
            read |= reader.read
        self.unread |= ~read

    def per_element(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """(N, channel elements, positions) of a tapped tensor."""
        dim, k = self.dims[name]
        t = t.detach().double().movedim(tuple(range(dim, dim + k)), tuple(range(1, 1 + k)))
        return t.reshape(t.shape[0], self.readers[name].n_features, -1)


class _Moments(_Taps):
    """Sums of z and z^2 over examples and positions, per unit and tap."""

    def __init__(self, job: Job):
        super().__init__(job)
        self.sums: dict = {}

    def __call__(self, name: str, t: torch.Tensor) -> None:
        z = self.per_element(name, t)
        reader = self.readers[name]
        row = torch.stack([reader.to_units(z.mean(2).sum(0, keepdim=True))[0],
                           reader.to_units((z * z).mean(2).sum(0, keepdim=True))[0]])
        count = torch.tensor(float(z.shape[0]))
        s, n = self.sums.get(name, (0.0, 0.0))
        self.sums[name] = (s + row, n + count)

    def result(self, stat: str) -> dict:
        total, taps = np.zeros(self.width), np.zeros(self.width)
        for name, (s, n) in self.sums.items():
            mean, square = (s / n).cpu().numpy()
            value = mean if stat == "mean" else np.sqrt(np.maximum(square - mean * mean, 0.0))
            read = self.readers[name].read
            total[read] += value[read]
            taps[read] += 1
        values = total / np.maximum(taps, 1)
        values[self.unread] = 0.0
        return split(values, self.groups, self.offsets)


class _Means(_Taps):
    """Per-example mean activation of every unit, averaged over taps: (examples, width)."""

    def __init__(self, job: Job):
        super().__init__(job)
        self.rows: dict = {}

    def __call__(self, name: str, t: torch.Tensor) -> None:
        z = self.per_element(name, t).mean(2)
        self.rows.setdefault(name, []).append(self.readers[name].to_units(z).cpu())

    def result(self) -> np.ndarray:
        total, taps = 0.0, np.zeros(self.width)
        for name, rows in self.rows.items():
            total = total + torch.cat(rows).numpy()
            taps[self.readers[name].read] += 1
        return np.atleast_2d(total / np.maximum(taps, 1))


class _Recording(fx.Interpreter):
    """Runs the graph and hands the values of the tapped nodes to ``tap(name, value)``."""

    def __init__(self, gm: fx.GraphModule, names: set, tap):
        super().__init__(gm)
        self.names, self.tap = names, tap

    def run_node(self, n: fx.Node):
        value = super().run_node(n)
        if n.name in self.names:
            self.tap(n.name, value)
        return value


def _run(job: Job, taps: _Taps) -> None:
    device = device_of(job.model)
    recorder = _Recording(job.model, set(taps.readers), taps)
    with evaluating(job.model, job.analysis, job.removed), torch.no_grad():
        for batch in job.batches:
            x, _ = xy(batch, device)
            recorder.run(x)


