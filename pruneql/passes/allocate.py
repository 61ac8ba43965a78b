"""Decide which channels go: the one writer of ``ctx.cut``.

It runs once per round of the decision loop (``score → allocate → recover``):

- one shot: every live group loses its lowest-scored units down to its amount;
- ``strategy greedy`` (Li et al.): one group per round, in order, each scored after the
  earlier cuts;
- ``iterate N steps``: the cut of every group spread over N rounds, rescored each round;
- ``target flops|params|latency X``: units of all groups ranked together and removed until
  the budget is met (statement amounts are floors); with ``iterate N steps`` the budget is
  approached in N equal steps, and ``iterate until target remove R per step`` removes the
  R globally lowest units per round until it is met (Molchanov et al.'s procedure).

A channel is never removed when that would leave some tensor without channels.
"""
from __future__ import annotations

import math

import numpy as np

from pruneql.distributed import from_leader
from pruneql.errors import PlanError
from pruneql.graph.budget import Costs, spend
from pruneql.graph.channels import layer_params
from pruneql.graph.cut import Cut
from pruneql.latency import layer_table
from pruneql.lang import ast
from pruneql.passes.context import Context
from pruneql.passes.score import greedy
from pruneql.training import Progress

_SLACK = 0.005     # a budget counts as met within half a percent of the baseline


def allocate(ctx: Context) -> Context:
    """Advance ``ctx.cut`` by one round; it is ``done`` after the last. Under torchrun
    rank 0 decides and every rank takes its decision."""
    if ctx.cut is None:
        ctx.cut = _new_cut(ctx)
    cut = ctx.cut
    cut.removed, cut.final, cut.done, cut.round, ctx.target = from_leader(lambda: _round(ctx))
    _show_round(ctx)
    return ctx


def _show_round(ctx: Context) -> None:
    """Rounds of a loop (``iterate``, greedy scoring) as progress: one step each."""
    steps = ctx.recipe.first(ast.Iterate)
    if ctx.progress is None or (steps is None and not greedy(ctx.recipe)):
        return
    label = "iterate rounds" if steps is not None else "greedy rounds (one group each)"
    if ctx.cut.round == 1:
        total = None if getattr(steps, "until_target", False) else \
            steps.steps if steps is not None else len(ctx.live())
        ctx.progress.start(label, total)
    info = {"removed": int(ctx.cut.removed.sum())}
    if ctx.target:
        info[ctx.target["metric"]] = f"{ctx.target['achieved']:.1%}"
    if ctx.rounds:
        info["loss"] = ctx.rounds[-1]["loss"]
    ctx.progress.advance(label, **info)
    if ctx.cut.done:
        ctx.progress.end(label)


def _round(ctx: Context) -> tuple:
    ctx.cut.round += 1
    target, steps = ctx.recipe.first(ast.Target), ctx.recipe.first(ast.Iterate)
    if target is not None:
        _budget_round(ctx, target, steps)
    elif steps is not None:
        _iterate_round(ctx, steps.steps)
    else:
        _one_shot_round(ctx)
    return ctx.cut.removed, ctx.cut.final, ctx.cut.done, ctx.cut.round, ctx.target


def _new_cut(ctx: Context) -> Cut:
    cut = Cut(ctx.analysis)
    for sel in ctx.selections:
        if sel.skipped_by is not None:
            cut.skipped[sel.group.id] = sel.skipped_by
        elif ctx.sensitivity.get(sel.group.id, {}).get("skip"):
            cut.skipped[sel.group.id] = ctx.sensitivity[sel.group.id]["statement"]
    return cut


def _cut_to(ctx: Context, sel, kept: int) -> None:
    """Remove the group's lowest-scored live units until ``kept`` remain."""
    cut = ctx.cut
    scores = np.where(cut.group_removed(sel.group), -np.inf, ctx.scores[sel.group.id])
    drop = ctx.analysis.choose_removal(sel.group, scores, kept)
    cut.remove(sel.group, drop)


def _one_shot_round(ctx: Context) -> None:
    for sel in _scored(ctx):
        _cut_to(ctx, sel, sel.floor)
        ctx.cut.final.add(sel.group.id)
    ctx.cut.done = not greedy(ctx.recipe) or all(
        sel.group.id in ctx.cut.final for sel in ctx.live())


def _iterate_round(ctx: Context, steps: int) -> None:
    for sel in _scored(ctx):
        _cut_to(ctx, sel, _kept_at(sel, ctx.cut.round, steps))
    ctx.cut.done = ctx.cut.round >= steps


def _kept_at(sel, step: int, steps: int) -> int:
    """Units a group keeps after ``step`` of ``steps``: the cut spread evenly."""
    return sel.group.size - math.ceil((sel.group.size - sel.floor) * step / steps)


def _scored(ctx: Context) -> list:
    return [sel for sel in ctx.live() if sel.group.id in ctx.scores]


# ---- budgets -------------------------------------------------------------------------------

def _budget_round(ctx: Context, target: ast.Target, steps) -> None:
    if steps is not None and ctx.cut.round == 1:
        _check_reachable(ctx, target)
    costs = _costs(ctx, target.metric)
    before = costs.total()
    start = costs.start_from(ctx.cut.removed).total()
    live = _scored(ctx)
    goal, limit, last = _round_goal(ctx, target, steps, before)
    drops = spend(costs, _spendable(ctx, live), goal, slack=_SLACK * before, limit=limit)
    if limit is not None and costs.total() >= start:
        costs, drops = _nearest_below(ctx, target.metric, live, goal, limit) or (costs, drops)
    for sel in live:
        ctx.cut.remove(sel.group, drops.get(sel.group.id, []))
    achieved = costs.total() / before if before else 1.0
    ctx.target = _target_report(ctx, target, achieved, before, costs)
    met = achieved <= target.value + _SLACK
    stuck = costs.total() >= start
    ctx.cut.done = (met or stuck) if limit is not None else last
    if ctx.cut.done and not met:
        raise _out_of_reach(target, achieved)


def _spendable(ctx: Context, live: list) -> list:
    """(group, scores, floor, round step, removed positions) of each live selection."""
    return [(sel.group, ctx.scores[sel.group.id], max(1, sel.floor),
             sel.statement.round or 1, ctx.cut.group_removed(sel.group)) for sel in live]


def _nearest_below(ctx: Context, metric: str, live: list, goal: float, limit: int):
    """The last round of ``iterate until target``, when every group's next step lands
    more than the slack below the goal: (costs, drops) of the one group step that lands
    nearest below it, or None. Without it the loop would stop short of a budget it can
    reach (a single unit of a coarse layer can be worth more than the slack)."""
    best = None
    for sel in live:
        costs = _costs(ctx, metric).start_from(ctx.cut.removed)
        drops = spend(costs, _spendable(ctx, [sel]), goal, slack=math.inf, limit=limit)
        if costs.total() <= goal and (best is None or costs.total() > best[0].total()):
            best = (costs, drops)
    return best


def _check_reachable(ctx: Context, target: ast.Target) -> None:
    """A budget approached in rounds fails in its first round, not after every round's
    scoring and recovery: the whole cut, tried at once, must reach it."""
    costs = _costs(ctx, target.metric)
    before = costs.total()
    costs.start_from(ctx.cut.removed)
    spend(costs, _spendable(ctx, _scored(ctx)), target.value * before, slack=_SLACK * before)
    achieved = costs.total() / before if before else 1.0
    if achieved > target.value + _SLACK:
        raise _out_of_reach(target, achieved)


def _out_of_reach(target: ast.Target, achieved: float) -> PlanError:
    return PlanError(f"target {target.metric} {target.value:.1%} is out of reach: the most "
                     f"this recipe can remove leaves {achieved:.1%} of the baseline",
                     span=target.span, hint="select more layers, lower the `keep` floors "
                                            "of the prune statements, or raise the target")


def _round_goal(ctx: Context, target, steps, before: float) -> tuple:
    """(cost goal of this round, units to remove in it or None, is it the last round)."""
    goal = target.value * before
    if steps is None:
        return goal, None, True
    if getattr(steps, "until_target", False):
        return goal, steps.per_step, False
    share = min(1.0, ctx.cut.round / steps.steps)
    return before - (before - goal) * share, None, ctx.cut.round >= steps.steps


def _target_report(ctx, target, achieved: float, before: float, costs: Costs) -> dict:
    found = {"metric": target.metric, "value": target.value, "achieved": achieved,
             "rounds": ctx.cut.round}
    if target.metric == "latency":
        found.update(predicted_ms=costs.total(), before_ms=before)
    return found


def _costs(ctx: Context, metric: str) -> Costs:
    analysis = ctx.analysis
    if metric == "flops":
        return Costs(analysis, "flops")
    if metric == "params":
        counted = sum(layer_params(l.module, l.kind, None, None) for l in analysis.layers.values())
        total = sum(p.numel() for p in ctx.gm.parameters())
        return Costs(analysis, "params", fixed=total - counted)
    table = _latency_table(ctx)
    rest = table.pop("<rest>")
    return Costs(analysis, "latency", latency=table, fixed=rest)


def _latency_table(ctx: Context) -> dict:
    """Per-layer latency lines, measured once per compile (in the first budget round)."""
    if "latency" not in ctx.cut.cache:
        progress = ctx.progress or Progress()
        label = "latency table (every layer timed alone at full and half width)"
        progress.start(label)
        ctx.cut.cache["latency"] = layer_table(ctx.analysis, ctx.gm.eval(),
                                               ctx.example_inputs)
        progress.end(label)
    return dict(ctx.cut.cache["latency"])
