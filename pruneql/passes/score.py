"""Score every channel of every selected group; greedy scoring decides removals as it goes."""
from __future__ import annotations

import numpy as np

from pruneql.criteria import WEIGHT_CRITERIA, random_scores
from pruneql.lang import ast
from pruneql.passes.context import Context


def score(ctx: Context) -> Context:
    """Fill ``ctx.scores`` (group id -> score per group channel).

    With ``strategy greedy`` (Li et al.) a layer is scored without the kernels that read
    channels already removed from earlier groups, so this pass also fixes
    ``ctx.removed`` for the groups it has scored.
    """
    strategy = ctx.recipe.first(ast.StrategyStmt)
    greedy = strategy is not None and strategy.name == "greedy"
    analysis = ctx.analysis
    ctx.removed = np.zeros(len(analysis.classes), dtype=bool)
    for sel in ctx.selections:
        if sel.skipped_by is not None:
            continue
        ctx.scores[sel.group.id] = group_scores(ctx, sel, ctx.removed if greedy else None)
        if greedy:
            drop = analysis.choose_removal(sel.group, ctx.scores[sel.group.id], sel.kept)
            ctx.removed[sel.group.classes[drop]] = True
    return ctx


def group_scores(ctx: Context, sel, removed: np.ndarray | None) -> np.ndarray:
    """Mean over the selected producers' filters of each group channel's score."""
    group, crit = sel.group, sel.statement.criterion
    if crit.name == "random":
        return random_scores(group.size, int(crit.arg("seed", ctx.options.seed)), group.id)
    total, count = _accumulate(ctx, group, sel.selected, crit.name, removed)
    if not np.all(count):   # channels no selected producer writes: use every producer
        all_total, all_count = _accumulate(ctx, group, group.producers, crit.name, removed)
        missing = count == 0
        total[missing], count[missing] = all_total[missing], all_count[missing]
    return total / np.maximum(count, 1)


def _accumulate(ctx, group, producers, criterion: str, removed) -> tuple:
    total = np.zeros(group.size)
    count = np.zeros(group.size)
    for name in producers:
        layer = ctx.analysis.layers[name]
        in_mask = None
        if removed is not None and layer.in_elems is not None:
            in_mask = ~removed[ctx.analysis.classes[layer.in_elems]]
        scores = WEIGHT_CRITERIA[criterion](layer.module, _per_input(layer, in_mask))
        np.add.at(total, group.filters[name], scores)
        np.add.at(count, group.filters[name], 1)
    return total, count


def _per_input(layer, in_mask):
    """The mask over the weight's input dimension; grouped convs have none to mask."""
    if in_mask is None or getattr(layer.module, "groups", 1) == 1:
        return in_mask
    return None
