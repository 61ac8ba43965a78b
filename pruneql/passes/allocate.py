"""Decide which channels go: the lowest-scored ones of each selected group, at once or
gradually (``iterate N steps [finetune K steps]``, Molchanov et al.)."""
from __future__ import annotations

import math

import numpy as np

from pruneql.errors import PlanError
from pruneql.graph.budget import Costs, spend
from pruneql.graph.channels import layer_params
from pruneql.graph.gates import gated
from pruneql.latency import layer_table
from pruneql.lang import ast
from pruneql.passes.context import Context
from pruneql.passes.finetune import hyper_of
from pruneql.passes.score import scores_of
from pruneql.training import train_steps


def allocate(ctx: Context) -> Context:
    """Mark the ``size - kept`` lowest-scored channels of each selected group removed
    (never the last channel of any tensor); with a ``target``, rank channels across groups
    and remove until the budget is met."""
    if ctx.removed is None:
        ctx.removed = np.zeros(len(ctx.analysis.classes), dtype=bool)
    target = ctx.recipe.first(ast.Target)
    if target is not None:
        return _to_budget(ctx, target)
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


def _to_budget(ctx: Context, target: ast.Target) -> Context:
    """Statement amounts become floors; channels go globally until the target is met."""
    costs = _costs(ctx, target.metric)
    before = costs.total()
    live = [sel for sel in ctx.selections if sel.skipped_by is None]
    groups = [(sel.group, ctx.scores[sel.group.id], max(1, sel.kept), sel.statement.round or 1)
              for sel in live]
    drops = spend(costs, groups, target.value * before, slack=_SLACK * before)
    achieved = costs.total() / before if before else 1.0
    if achieved > target.value + _SLACK:
        raise PlanError(f"target {target.metric} {target.value:.1%} is out of reach: the most "
                        f"this recipe can remove leaves {achieved:.1%} of the baseline",
                        span=target.span, hint="select more layers, lower the `keep` floors "
                                               "of the prune statements, or raise the target")
    for sel in live:
        ctx.removed[sel.group.classes[drops[sel.group.id]]] = True
        sel.kept = sel.group.size - len(drops[sel.group.id])
    ctx.target = {"metric": target.metric, "value": target.value, "achieved": achieved}
    if target.metric == "latency":
        ctx.target["predicted_ms"] = costs.total()
        ctx.target["before_ms"] = before
    return ctx


_SLACK = 0.005     # a budget counts as met within half a percent of the baseline


def _costs(ctx: Context, metric: str) -> Costs:
    analysis = ctx.analysis
    if metric == "flops":
        return Costs(analysis, "flops")
    if metric == "params":
        counted = sum(layer_params(l.module, l.kind, None, None) for l in analysis.layers.values())
        total = sum(p.numel() for p in ctx.gm.parameters())
        return Costs(analysis, "params", fixed=total - counted)
    table = layer_table(analysis, ctx.gm.eval(), ctx.example_inputs)
    rest = table.pop("<rest>")
    return Costs(analysis, "latency", latency=table, fixed=rest)
