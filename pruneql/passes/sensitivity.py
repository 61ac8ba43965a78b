"""``skip sensitive [above X]`` (Li et al. 2017): each selected group pruned alone at its
statement's amount; groups whose validation metric (accuracy, mIoU, ... of the task) drops
by more than X (a fraction; 1% = one point, the default) are left whole."""
from __future__ import annotations

from pruneql.lang import ast
from pruneql.passes._trials import run_trials
from pruneql.passes.context import Context

DEFAULT_THRESHOLD = 0.01


def sensitivity(ctx: Context) -> Context:
    """Set ``ctx.sensitivity``: group id -> {"drop", "skip", "statement"}."""
    stmt = next((s for s in ctx.recipe.of(ast.Skip) if s.sensitive), None)
    if stmt is None:
        return ctx
    threshold = DEFAULT_THRESHOLD if stmt.threshold is None else stmt.threshold
    live = [sel for sel in ctx.selections if sel.skipped_by is None]
    trials = {sel.group.id: [1.0 - sel.floor / sel.group.size] for sel in live}
    found = run_trials(ctx, live, trials)
    task = ctx.task
    base = ctx.baseline["val"][task.metric]
    ctx.sensitivity = {}
    for sel in live:
        drop = task.drop(base, found[sel.group.id][0][task.metric])
        ctx.sensitivity[sel.group.id] = {"drop": drop, "skip": drop > threshold,
                                         "statement": stmt}
    return ctx
