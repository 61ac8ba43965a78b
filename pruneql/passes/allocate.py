"""Decide which channels go: the lowest-scored ones of each selected group, at once or
gradually (``iterate N steps [finetune K steps]``, Molchanov et al.)."""
from __future__ import annotations

import math

import numpy as np

from pruneql.graph.gates import gated
from pruneql.lang import ast
from pruneql.passes.context import Context
from pruneql.passes.finetune import hyper_of
from pruneql.passes.score import scores_of
from pruneql.training import train_steps


def allocate(ctx: Context) -> Context:
    """Mark the ``size - kept`` lowest-scored channels of each selected group removed
    (never the last channel of any tensor)."""
    if ctx.removed is None:
        ctx.removed = np.zeros(len(ctx.analysis.classes), dtype=bool)
    steps = ctx.recipe.first(ast.Iterate)
    if steps is None:
        _remove_to(ctx, lambda sel: sel.kept)
        return ctx
    for step in range(1, steps.steps + 1):
        if step > 1:      # rescore the partly pruned (and recovered) network
            live = [sel for sel in ctx.selections if sel.skipped_by is None]
            ctx.scores.update(scores_of(ctx, live, ctx.removed))
        _remove_to(ctx, lambda sel: _kept_at(sel, step, steps.steps))
        if steps.finetune_steps and not ctx.dry_run:
            with gated(ctx.gm, ctx.analysis, ctx.removed):
                train_steps(ctx.gm, ctx.data, steps.finetune_steps,
                            hyper_of(ctx.recipe.first(ast.Finetune)))
    return ctx


def _kept_at(sel, step: int, steps: int) -> int:
    """Channels a group keeps after ``step`` of ``steps``: the cut spread evenly."""
    return sel.group.size - math.ceil((sel.group.size - sel.kept) * step / steps)


def _remove_to(ctx: Context, kept_of) -> None:
    for sel in ctx.selections:
        scores = ctx.scores.get(sel.group.id)
        if scores is None:
            continue
        # channels already gone rank first, so each step only adds to the cut
        scores = np.where(ctx.removed[sel.group.classes], -np.inf, scores)
        drop = ctx.analysis.choose_removal(sel.group, scores, kept_of(sel))
        ctx.removed[sel.group.classes[drop]] = True
