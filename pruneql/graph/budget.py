"""Global allocation against a budget (``target flops|params|latency X``).

Channels of every selected group are ranked together by their scores (normalised per
group by the score pass, so layers are comparable) and removed lowest first — in steps that keep each
group's count a multiple of its ``round`` and above its bound — until the model's cost is
within the budget. The cost is updated incrementally: each channel class knows the layers
it touches, so removing it re-prices only those layers.
"""
from __future__ import annotations

import heapq

import numpy as np

from pruneql.graph.channels import layer_flops, layer_params, width_of
from pruneql.graph.flops import batch_of, node_macs


class Costs:
    """The model's FLOPs, parameters or predicted latency as classes are removed."""

    def __init__(self, analysis, metric: str, latency: dict | None = None,
                 fixed: float = 0.0):
        self.analysis, self.metric = analysis, metric
        self.layers = list(analysis.layers.values())
        self.lines = latency or {}               # layer -> (ms intercept, ms per MAC)
        self.fixed = fixed                       # cost no channel removal changes
        self.width_in = [width_of(l.in_elems) for l in self.layers]
        self.width_out = [width_of(l.out_elems) for l in self.layers]
        self.price = [self._price(i) for i in range(len(self.layers))]
        self.touches = self._touches()
        self.left = {name: s.ids.size for name, s in analysis.spaces.items()}
        self.spaces_of = analysis._spaces_of_class()
        self.products, self.products_of = self._products() if metric == "flops" else ([], {})
        self.product_price = [self._product_price(n) for n in self.products]

    def _products(self) -> tuple:
        """Matrix products other than layers (attention), and which spaces price them."""
        found, of_space = [], {}
        shape = lambda n: n.meta.get("pruneql.shape")  # noqa: E731
        for node in self.analysis.gm.graph.nodes:
            if node_macs(node, shape) is None:
                continue
            for src in node.all_input_nodes:
                if src.name in self.analysis.spaces:
                    of_space.setdefault(src.name, []).append(len(found))
            found.append(node)
        return found, of_space

    def _product_price(self, node) -> float:
        return node_macs(node, self._kept_shape) / batch_of(self.analysis.gm)

    def _kept_shape(self, node) -> tuple | None:
        shape = node.meta.get("pruneql.shape")
        space = self.analysis.spaces.get(node.name)
        if shape is None or space is None or space.ids.ndim != 1:
            return shape
        shape = list(shape)
        shape[space.dim] = self.left[node.name]
        return tuple(shape)

    def start_from(self, removed: np.ndarray) -> "Costs":
        """Count the classes marked in ``removed`` as already gone."""
        for cls in np.nonzero(removed)[0].tolist():
            self.remove(cls)
        return self

    def total(self) -> float:
        return self.fixed + sum(self.price) + sum(self.product_price)

    def _price(self, i: int) -> float:
        layer = self.layers[i]
        n_in, n_out = self.width_in[i], self.width_out[i]
        if self.metric == "params":
            return layer_params(layer.module, layer.kind, n_in, n_out)
        flops = layer_flops(layer, n_in, n_out)
        if self.metric != "latency":
            return flops
        intercept, slope = self.lines.get(layer.name, (0.0, 0.0))
        return intercept + slope * flops

    def _touches(self) -> dict:
        found: dict = {}
        classes = self.analysis.classes
        for i, layer in enumerate(self.layers):
            for side, elems in ((0, layer.in_elems), (1, layer.out_elems)):
                if elems is None:
                    continue
                cls, counts = np.unique(classes[elems], return_counts=True)
                for c, k in zip(cls.tolist(), counts.tolist()):
                    found.setdefault(c, []).append((i, side, k))
        return found

    def removable(self, cls: int) -> bool:
        """Removing ``cls`` leaves every tensor at least one channel."""
        return all(self.left[s] > k for s, k in self.spaces_of.get(cls, ()))

    def remove(self, cls: int, sign: int = 1) -> None:
        """Take ``cls`` out (``sign=-1`` puts it back)."""
        for space, k in self.spaces_of.get(cls, ()):
            self.left[space] -= sign * k
            for j in self.products_of.get(space, ()):
                self.product_price[j] = self._product_price(self.products[j])
        for i, side, k in self.touches.get(cls, ()):
            if side == 0:
                self.width_in[i] -= sign * k
            else:
                self.width_out[i] -= sign * k
            self.price[i] = self._price(i)


def allowed_kept(size: int, floor: int, step: int) -> list:
    """Kept counts a group may step down through: multiples of ``step`` (and ``size``
    itself), from ``size`` down to no fewer than ``floor``.

    >>> allowed_kept(20, 5, 8), allowed_kept(6, 1, 1)
    ([20, 16, 8], [6, 5, 4, 3, 2, 1])
    """
    step = max(1, step)
    lowest = max(floor, step)
    counts = [size] + [k for k in range(size - size % step, lowest - 1, -step) if k < size]
    return [k for k in counts if k >= min(lowest, size)]


def spend(costs: Costs, groups: list, goal: float, slack: float = 0.0,
          limit: int | None = None) -> dict:
    """Remove channels, lowest score first, until ``costs.total() <= goal`` (or, with
    ``limit``, until at least ``limit`` more units are gone).

    ``groups`` holds ``(group, scores, floor, step, gone)``: ``gone`` marks positions
    already removed (``costs`` must already count them removed). Returns group id -> the
    positions removed, old and new. A step that would land more than ``slack`` below the
    goal is undone and its group retired, so a coarse group (one residual channel of an
    option-A ResNet spans dozens of layers) cannot overshoot while finer ones can still
    close the gap. Stops early, returning what it removed, when nothing more may go.
    """
    plans, heap = {}, []
    for group, scores, floor, step, gone in groups:
        plans[group.id] = _Plan(group, scores, allowed_kept(group.size, floor, step), gone)
        _push(heap, plans[group.id])
    taken_total, closest = 0, None
    while heap and costs.total() > goal and (limit is None or taken_total < limit):
        _, _, gid = heapq.heappop(heap)
        taken = plans[gid].take(costs)
        if costs.total() < goal - slack:
            if closest is None or costs.total() > closest[0]:
                closest = (costs.total(), gid, taken)
            plans[gid].give_back(costs, taken)
            continue
        taken_total += len(taken)
        _push(heap, plans[gid])
    if costs.total() > goal and closest is not None:
        # every step left overshoots the slack: take the one landing closest below the goal
        _, gid, taken = closest
        plans[gid].retake(costs, taken)
    return {gid: np.array(sorted(p.removed), dtype=np.int64) for gid, p in plans.items()}


class _Plan:
    """One group's removal order and the kept counts it may stop at."""

    def __init__(self, group, scores: np.ndarray, stops: list, gone: np.ndarray):
        self.group, self.scores = group, scores
        self.removed: list = np.nonzero(gone)[0].tolist()
        left = group.size - len(self.removed)
        self.stops = [k for k in stops if k < left]
        self.order = [p for p in np.argsort(scores, kind="stable").tolist() if not gone[p]]

    def next_chunk(self) -> list:
        if not self.stops:
            return []
        return self.order[:self.group.size - len(self.removed) - self.stops[0]]

    def take(self, costs: Costs) -> list:
        """Remove the next chunk; returns the positions removed."""
        chunk = self.next_chunk()
        self.stops.pop(0)
        taken = []
        for pos in chunk:
            self.order.remove(pos)
            cls = int(self.group.classes[pos])
            if costs.removable(cls):
                costs.remove(cls)
                taken.append(pos)
        self.removed.extend(taken)
        return taken

    def retake(self, costs: Costs, taken: list) -> None:
        """Remove ``taken`` again (after :meth:`give_back`)."""
        for pos in taken:
            costs.remove(int(self.group.classes[pos]))
            self.removed.append(pos)

    def give_back(self, costs: Costs, taken: list) -> None:
        for pos in taken:
            costs.remove(int(self.group.classes[pos]), sign=-1)
            self.removed.remove(pos)


def _push(heap: list, plan: _Plan) -> None:
    chunk = plan.next_chunk()
    if chunk:
        heapq.heappush(heap, (float(np.mean(plan.scores[chunk])), plan.group.id, plan.group.id))
