"""The oracle: the loss change when one unit alone is (additionally) removed.

``oracle(signed=false)`` is Molchanov et al.'s "oracle-abs", |C(without c) - C|, the
reference ranking of their criteria study; ``oracle(signed=true)`` is the change itself,
C(without c) - C, so a unit whose removal lowers the loss ranks below every unit whose
removal raises it (Molchanov et al.'s "oracle-loss"). One evaluation of the batches per
unit; units already removed score 0.
"""
from __future__ import annotations

import numpy as np

from pruneql.criteria.base import Job, Scored
from pruneql.criteria.evaluation import gated_loss
from pruneql.lang.criteria import register


@register("oracle")
def oracle(job: Job, *, signed: bool) -> Scored:
    """Loss change (or its size) of removing each live unit alone."""
    base = gated_loss(job, job.removed)
    scores = {}
    for group in job.groups:
        change = np.zeros(group.size)
        for j, cls in enumerate(group.classes.tolist()):
            if job.removed[cls]:
                continue
            trial = job.removed.copy()
            trial[cls] = True
            change[j] = gated_loss(job, trial) - base
        scores[group.id] = change if signed else np.abs(change)
    return Scored(scores)
