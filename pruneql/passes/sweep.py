"""`pruneql sensitivity`: every selected group pruned alone at a sweep of fractions."""
from __future__ import annotations

from pruneql.criteria import DATA_CRITERIA
from pruneql.errors import RecipeError
from pruneql.passes._trials import run_trials
from pruneql.passes.context import Context

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def sweep(ctx: Context) -> Context:
    """Set ``ctx.sweep``: rows ``{"group", "layer", "index", "channels", "criterion",
    "metric", "baseline", "fraction", "kept", <metric>}``, one per group and fraction
    (``options.fractions``, default 0.1 … 0.9)."""
    if ctx.data is None:
        raise RecipeError("sensitivity analysis needs data",
                          hint="add `data digits;` (or another source) or pass --data")
    live = [sel for sel in ctx.selections if sel.skipped_by is None]
    found = run_trials(ctx, live, list(ctx.options.fractions or FRACTIONS))
    rows = []
    for sel in live:
        layer = ctx.analysis.layers[sel.selected[0]]
        for row in found[sel.group.id]:
            rows.append({"group": sel.group.id, "layer": layer.name, "index": layer.index,
                         "channels": sel.group.size, "criterion": _ranked_by(sel),
                         "metric": ctx.task.metric,
                         "baseline": ctx.baseline["val"][ctx.task.metric], **row})
    ctx.sweep = rows
    return ctx


def _ranked_by(sel) -> str:
    """The criterion that ranked the channels: data-driven ones rank by L1 here."""
    name = sel.statement.criterion.name
    return "l1" if name in DATA_CRITERIA else name
