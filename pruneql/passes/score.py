"""Score every unit of the groups still to be cut, on the network as it stands.

Statements with the same criterion (and arguments) are scored together, in one pass over
the data, through the criterion registry (:func:`pruneql.criteria.score_groups`); a
criterion that needs data gets the first ``batches`` training batches of this round.

Scores are made comparable across groups here, once: each group's vector (its live
units; removed ones score 0) is divided by its l2 norm — Molchanov et al.'s per-layer
normalisation. A criterion that returns its scores normalised (taylor, whose FLOPs term
comes after the normalisation) is left as it is. Budgets rank the units of all groups by
these numbers and never normalise them again.
"""
from __future__ import annotations

import numpy as np

from pruneql.criteria import Job, score_groups
from pruneql.distributed import from_leader
from pruneql.lang import ast
from pruneql.lang.criteria import spec
from pruneql.passes.context import Context


def score(ctx: Context) -> Context:
    """Set ``ctx.scores`` (group id -> score per group unit; higher = keep) for the groups
    this allocation round cuts: all live groups, or with ``strategy greedy`` (Li et al.)
    the next one, scored without the kernels that read channels already removed; and
    ``ctx.score_notes`` (group id -> diagnostics of its scores, e.g. the ensemble's fit)."""
    removed = ctx.cut.removed if ctx.cut is not None else None
    # under torchrun rank 0 scores (on the same batches as a single process) for all
    ctx.scores, notes = from_leader(lambda: scores_of(ctx, pending(ctx), removed))
    ctx.score_notes.update(notes)
    return ctx


def pending(ctx: Context) -> list:
    """Live selections whose cut is not final yet; greedy takes them one at a time."""
    final = ctx.cut.final if ctx.cut is not None else set()
    todo = [sel for sel in ctx.live() if sel.group.id not in final]
    return todo[:1] if greedy(ctx.recipe) else todo


def greedy(recipe) -> bool:
    strategy = recipe.first(ast.StrategyStmt)
    return strategy is not None and strategy.name == "greedy"


def scores_of(ctx: Context, selections: list, removed: np.ndarray | None) -> tuple:
    """(group id -> normalised scores, group id -> notes) of the selections' groups with
    ``removed`` classes already gone."""
    found, notes = {}, {}
    for crit, sels in _by_criterion(selections).items():
        job = Job(ctx.gm, ctx.analysis, [sel.group for sel in sels], _batches(ctx, crit),
                  removed, selected={sel.group.id: sel.selected for sel in sels},
                  seed=ctx.options.seed, task=ctx.task)
        result = score_groups(crit.name, dict(crit.args), job, span=crit.span)
        for group in job.groups:
            s = result.scores[group.id]
            found[group.id] = s if result.normalised else normalised(s, job.gone(group))
        notes.update(result.notes)
    return found, notes


def _by_criterion(selections: list) -> dict:
    """Criterion (name and arguments; spans do not count) -> its selections."""
    found: dict = {}
    for sel in selections:
        found.setdefault(sel.statement.criterion, []).append(sel)
    return found


def normalised(scores: np.ndarray, gone: np.ndarray | None = None) -> np.ndarray:
    """``scores`` over the l2 norm of the live ones; ``gone`` positions become 0
    (unchanged when all live scores are zero).

    >>> normalised(np.array([3.0, 4.0])).tolist()
    [0.6, 0.8]
    >>> normalised(np.array([3.0, 4.0, 12.0]), np.array([False, False, True])).tolist()
    [0.6, 0.8, 0.0]
    """
    scores = np.asarray(scores, dtype=np.float64)
    if gone is not None and gone.any():
        scores = np.where(gone, 0.0, scores)
    norm = float(np.sqrt(np.sum(np.square(scores))))
    return scores / norm if norm > 0 else scores


def _batches(ctx: Context, crit) -> list:
    """The first ``batches`` training batches of this round (all when not limited); none
    for criteria that read no data."""
    declared = spec(crit.name)
    if not declared.needs_data:
        return []
    wanted = {**declared.defaults(), **dict(crit.args)}.get("batches")
    batches = []
    for batch in ctx.data.scoring or ctx.data.train:   # one process's batches, every rank
        batches.append(batch)
        if wanted is not None and len(batches) >= wanted:
            break
    return batches
