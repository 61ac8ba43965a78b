"""Decide which channels go: the lowest-scored ones of each selected group."""
from __future__ import annotations

import numpy as np

from pruneql.passes.context import Context


def allocate(ctx: Context) -> Context:
    """Mark the ``size - kept`` lowest-scored channels of each selected group removed
    (never the last channel of any tensor)."""
    if ctx.removed is None:
        ctx.removed = np.zeros(len(ctx.analysis.classes), dtype=bool)
    for sel in ctx.selections:
        scores = ctx.scores.get(sel.group.id)
        if scores is not None:
            drop = ctx.analysis.choose_removal(sel.group, scores, sel.kept)
            ctx.removed[sel.group.classes[drop]] = True
    return ctx
