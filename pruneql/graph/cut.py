"""The pruning decisions: which channel classes are removed, and how many units each group
keeps. One object, written by the allocate pass and read by every pass after it.

>>> import torch
>>> from pruneql.graph.trace import trace
>>> from pruneql.graph.channels import analyze
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Conv2d(4, 2, 1))
>>> a = analyze(trace(net, (torch.randn(1, 3, 4, 4),)))
>>> cut = Cut(a)
>>> cut.remove(a.groups[0], [0, 2])
>>> cut.kept_units(a.groups[0]), cut.keep_mask(a.layers["1"].in_elems).tolist()
(2, [False, True, False, True])
"""
from __future__ import annotations

import numpy as np
import torch


class Cut:
    """Removed classes over a :class:`~pruneql.graph.channels.ChannelAnalysis`.

    ``removed`` is one bool per class id. ``skipped`` maps a group id to the reason it is
    left whole (a ``skip`` line, a sensitivity drop). ``round`` and ``done`` are the
    allocation loop's bookkeeping (``iterate``, greedy scoring, budgets).
    """

    def __init__(self, analysis, removed: np.ndarray | None = None):
        self.analysis = analysis
        self.removed = np.zeros(len(analysis.classes), dtype=bool) if removed is None \
            else np.asarray(removed, dtype=bool).copy()
        self.skipped: dict = {}
        self.final: set = set()          # groups whose cut is decided (greedy order)
        self.round = 0
        self.done = False
        self.cache: dict = {}            # the allocator's own measurements (latency)

    # ---- reading -----------------------------------------------------------------------
    def keep_mask(self, ids: np.ndarray) -> np.ndarray:
        """Which element ids survive."""
        return self.analysis.kept(ids, self.removed)

    def keep_index(self, ids) -> torch.Tensor | None:
        """Kept positions of a 1-D id array, or None when nothing there goes."""
        if ids is None:
            return None
        keep = self.keep_mask(ids)
        return None if keep.all() else torch.from_numpy(np.nonzero(keep)[0])

    def width(self, ids) -> tuple:
        """(before, after) channel counts of an id array; (None, None) when absent."""
        if ids is None:
            return None, None
        return int(len(ids)), int(self.keep_mask(ids).sum())

    def kept_shape(self, node_name: str, shape: tuple | None) -> tuple | None:
        """``shape`` of a node's tensor with the removed channels gone."""
        space = self.analysis.spaces.get(node_name)
        if space is None or shape is None:
            return shape
        keep = self.keep_mask(space.ids)
        if keep.all():
            return shape
        axes = range(keep.ndim)
        sizes = [int(keep.any(axis=tuple(a for a in axes if a != i)).sum()) for i in axes]
        shape = list(shape)
        shape[space.dim:space.dim + keep.ndim] = sizes
        return tuple(shape)

    def group_removed(self, group) -> np.ndarray:
        """Per group position: removed?"""
        return self.removed[group.classes]

    def kept_units(self, group) -> int:
        return group.size - int(self.group_removed(group).sum())

    def any(self) -> bool:
        return bool(self.removed.any())

    # ---- writing (the allocate pass) -----------------------------------------------------
    def remove(self, group, positions) -> None:
        """Mark the group's channels at ``positions`` removed."""
        self.removed[group.classes[np.asarray(positions, dtype=np.int64)]] = True

    def copy(self) -> "Cut":
        other = Cut(self.analysis, self.removed)
        other.skipped, other.final = dict(self.skipped), set(self.final)
        other.round, other.done = self.round, self.done
        return other
