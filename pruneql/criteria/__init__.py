"""Filter-importance criteria: per-channel scores of a group.

Weight criteria (``l1``, ``l2``; :mod:`pruneql.criteria.weights`) score the filters that
write each channel; ``random`` is the seeded baseline; the data-driven criteria
(``taylor``, ``activation``, ``ensemble``, ``oracle``) run the model on batches and score
whole groups at once (:mod:`pruneql.criteria.data_driven`). Low scores are removed first.
"""
from __future__ import annotations

from pruneql.criteria.data_driven import DATA_CRITERIA, data_scores, spearman
from pruneql.criteria.magnitude import l1, l2
from pruneql.criteria.random import random_scores
from pruneql.criteria.weights import WEIGHT_CRITERIA, group_weight_scores

__all__ = ["DATA_CRITERIA", "WEIGHT_CRITERIA", "data_scores", "group_weight_scores", "l1",
           "l2", "random_scores", "spearman"]
