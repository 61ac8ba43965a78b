"""Score every channel of every selected group; greedy scoring decides removals as it goes."""
from __future__ import annotations

import numpy as np

from pruneql.criteria import WEIGHT_CRITERIA, random_scores
from pruneql.criteria.data_driven import DATA_CRITERIA, data_scores
from pruneql.lang import ast
from pruneql.passes.context import Context


def score(ctx: Context) -> Context:
    """Fill ``ctx.scores`` (group id -> score per group channel; higher = keep).

    With ``strategy greedy`` (Li et al.) a layer is scored without the kernels that read
    channels already removed from earlier groups, so this pass also fixes
    ``ctx.removed`` for the groups it has scored.
    """
    strategy = ctx.recipe.first(ast.StrategyStmt)
    greedy = strategy is not None and strategy.name == "greedy"
    if ctx.removed is None:
        ctx.removed = np.zeros(len(ctx.analysis.classes), dtype=bool)
    live = [sel for sel in ctx.selections if sel.skipped_by is None]
    if not greedy:
        ctx.scores.update(scores_of(ctx, live, ctx.removed))
        return ctx
    for sel in live:
        ctx.scores.update(scores_of(ctx, [sel], ctx.removed))
        drop = ctx.analysis.choose_removal(sel.group, ctx.scores[sel.group.id], sel.kept)
        ctx.removed[sel.group.classes[drop]] = True
    return ctx


def scores_of(ctx: Context, selections: list, removed: np.ndarray) -> dict:
    """Scores of the selections' groups with ``removed`` classes already gone."""
    found, by_criterion = {}, {}
    for sel in selections:
        crit = sel.statement.criterion
        if crit.name in DATA_CRITERIA:
            by_criterion.setdefault(crit, []).append(sel.group)
        else:
            found[sel.group.id] = group_scores(ctx, sel, removed)
    for crit, groups in by_criterion.items():   # one pass over the data per criterion
        found.update(data_scores(crit.name, dict(crit.args), ctx.gm, ctx.analysis, groups,
                                 _batches(ctx, crit), removed, seed=ctx.options.seed))
    return found


def _batches(ctx: Context, crit) -> list:
    wanted = crit.arg("batches")
    batches = []
    for batch in ctx.data.train:
        batches.append(batch)
        if wanted is not None and len(batches) >= wanted:
            break
    return batches


def group_scores(ctx: Context, sel, removed: np.ndarray | None, criterion=None) -> np.ndarray:
    """Mean over the selected producers' filters of each group channel's score, each
    layer's scores relative to that layer's mean when several layers are coupled.
    ``criterion`` overrides the statement's (sensitivity ranks data criteria by L1)."""
    group, crit = sel.group, criterion or sel.statement.criterion
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
        if len(producers) > 1:
            # a filter's norm grows with its fan-in: relative to its own layer's mean, the
            # layers coupled in one group (the stages of a residual stream) are comparable
            scores = scores / (scores.mean() or 1.0)
        np.add.at(total, group.filters[name], scores)
        np.add.at(count, group.filters[name], 1)
    return total, count


def _per_input(layer, in_mask):
    """The mask over the weight's input dimension; grouped convs have none to mask."""
    if in_mask is None or getattr(layer.module, "groups", 1) == 1:
        return in_mask
    return None
