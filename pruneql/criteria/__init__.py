"""Filter-importance criteria: per-output-channel scores of one layer.

A criterion takes the layer's module, the mask of input channels still present (the greedy
strategy of Li et al. leaves out kernels reading removed maps) and its recipe arguments,
and returns one score per output channel; low scores are removed first (the allocation
never empties a tensor, see ``ChannelAnalysis.choose_removal``).

The data-driven criteria (``taylor``, ``activation``, ``ensemble``, ``oracle``) run the
model on batches and score whole groups at once: see :mod:`pruneql.criteria.data_driven`.
"""
from __future__ import annotations

from pruneql.criteria.data_driven import DATA_CRITERIA, data_scores, spearman
from pruneql.criteria.magnitude import l1, l2
from pruneql.criteria.random import random_scores

WEIGHT_CRITERIA = {"l1": l1, "l2": l2}
__all__ = ["DATA_CRITERIA", "WEIGHT_CRITERIA", "data_scores", "l1", "l2", "random_scores",
           "spearman"]
