"""Score every channel of the groups still to be cut, on the network as it stands.

Scores are made comparable across groups here, once: each group's vector is divided by
its ℓ2 norm (Molchanov et al.'s per-layer normalisation; Taylor's criterion already
returns it normalised, with its FLOPs regularisation applied after). Budgets rank the
channels of all groups by these numbers and never normalise them again.
"""
from __future__ import annotations

import numpy as np

from pruneql.criteria import DATA_CRITERIA, group_weight_scores, random_scores
from pruneql.criteria.data_driven import data_scores
from pruneql.distributed import from_leader
from pruneql.lang import ast
from pruneql.passes.context import Context

# criteria whose scores come back normalised per group (and possibly shifted after it)
SELF_NORMALISED = ("taylor",)


def score(ctx: Context) -> Context:
    """Set ``ctx.scores`` (group id -> score per group unit; higher = keep) for the groups
    this allocation round cuts: all live groups, or with ``strategy greedy`` (Li et al.)
    the next one, scored without the kernels that read channels already removed."""
    removed = ctx.cut.removed if ctx.cut is not None else None
    # under torchrun rank 0 scores (on the same batches as a single process) for all
    ctx.scores = from_leader(lambda: scores_of(ctx, pending(ctx), removed))
    return ctx


def pending(ctx: Context) -> list:
    """Live selections whose cut is not final yet; greedy takes them one at a time."""
    final = ctx.cut.final if ctx.cut is not None else set()
    todo = [sel for sel in ctx.live() if sel.group.id not in final]
    return todo[:1] if greedy(ctx.recipe) else todo


def greedy(recipe) -> bool:
    strategy = recipe.first(ast.StrategyStmt)
    return strategy is not None and strategy.name == "greedy"


def scores_of(ctx: Context, selections: list, removed: np.ndarray | None) -> dict:
    """Normalised scores of the selections' groups with ``removed`` classes already gone."""
    found, by_criterion = {}, {}
    for sel in selections:
        crit = sel.statement.criterion
        if crit.name in DATA_CRITERIA:
            by_criterion.setdefault(crit, []).append(sel.group)
        else:
            found[sel.group.id] = _weight_scores(ctx, sel, removed)
    for crit, groups in by_criterion.items():   # one pass over the data per criterion
        found.update(data_scores(crit.name, dict(crit.args), ctx.gm, ctx.analysis, groups,
                                 _batches(ctx, crit), removed, seed=ctx.options.seed,
                                 task=ctx.task))
    names = {sel.group.id: sel.statement.criterion.name for sel in selections}
    return {gid: s if names[gid] in SELF_NORMALISED else normalised(s)
            for gid, s in found.items()}


def normalised(scores: np.ndarray) -> np.ndarray:
    """``scores`` over their ℓ2 norm (unchanged when all zero).

    >>> normalised(np.array([3.0, 4.0])).tolist()
    [0.6, 0.8]
    """
    norm = float(np.sqrt(np.sum(np.square(scores))))
    return scores / norm if norm > 0 else scores


def _weight_scores(ctx: Context, sel, removed) -> np.ndarray:
    crit = sel.statement.criterion
    if crit.name == "random":
        return random_scores(sel.group.size, int(crit.arg("seed", ctx.options.seed)),
                             sel.group.id)
    return group_weight_scores(ctx.analysis, sel.group, sel.selected, crit.name, removed)


def _batches(ctx: Context, crit) -> list:
    wanted = crit.arg("batches")
    batches = []
    for batch in ctx.data.scoring or ctx.data.train:   # one process's batches, every rank
        batches.append(batch)
        if wanted is not None and len(batches) >= wanted:
            break
    return batches
