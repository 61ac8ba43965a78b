"""Weight criteria over a group: each channel's score from the filters that write it.

A group channel's score is the mean, over the selected producers' filters that write it,
of the filter's norm; when several layers are coupled each layer's norms are taken
relative to that layer's mean first (a filter's norm grows with its fan-in, so the stages
of a residual stream become comparable). Input kernels reading channels already removed
are left out (Li et al.'s greedy strategy; in ``iterate`` rounds, the network as it
stands).

A weight criterion is its filter norm, declared in :mod:`pruneql.lang.criteria` and
registered here with :func:`weight_criterion`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from pruneql.criteria.base import Job, Scored
from pruneql.criteria.magnitude import l1, l2
from pruneql.lang.criteria import register

# name -> filter norm, filled by weight_criterion (the registrations below)
WEIGHT_CRITERIA: dict[str, Callable] = {}


def weight_criterion(name: str, norm: Callable) -> Callable:
    """Register criterion ``name`` as ``norm(module, in_mask) -> one score per filter``
    averaged over each group channel's filters; returns the registered scorer."""
    WEIGHT_CRITERIA[name] = norm

    @register(name)
    def scorer(job: Job) -> Scored:
        return Scored({g.id: group_weight_scores(job.analysis, g, job.producers(g), name,
                                                 job.removed) for g in job.groups})
    scorer.__name__ = scorer.__qualname__ = f"{name}_scores"
    return scorer


weight_criterion("l1", l1)
weight_criterion("l2", l2)


def group_weight_scores(analysis, group, producers: tuple, criterion: str,
                        removed: np.ndarray | None = None) -> np.ndarray:
    """One float64 score per group channel (higher = keep) by weight criterion
    ``criterion`` (a name in :data:`WEIGHT_CRITERIA`)."""
    total, count = _accumulate(analysis, group, producers, criterion, removed)
    if not np.all(count):   # channels no selected producer writes: use every producer
        all_total, all_count = _accumulate(analysis, group, group.producers, criterion,
                                           removed)
        missing = count == 0
        total[missing], count[missing] = all_total[missing], all_count[missing]
    return total / np.maximum(count, 1)


def _accumulate(analysis, group, producers, criterion: str, removed) -> tuple:
    total = np.zeros(group.size)
    count = np.zeros(group.size)
    for name in producers:
        layer = analysis.layers[name]
        in_mask = None
        if removed is not None and layer.in_elems is not None:
            in_mask = analysis.kept(layer.in_elems, removed)
        scores = WEIGHT_CRITERIA[criterion](layer.module, _per_input(layer, in_mask))
        if len(producers) > 1:
            scores = scores / (scores.mean() or 1.0)
        np.add.at(total, group.filters[name], scores)
        np.add.at(count, group.filters[name], 1)
    return total, count


def _per_input(layer, in_mask):
    """The mask over the weight's input dimension; grouped convs have none to mask."""
    if in_mask is None or getattr(layer.module, "groups", 1) == 1:
        return in_mask
    return None
