"""Turn selectors into groups: which groups each prune statement prunes, and how much."""
from __future__ import annotations

from pruneql.errors import PlanError
from pruneql.graph.channels import PRODUCER_KINDS
from pruneql.lang import ast, describe
from pruneql.lang.select import Glob, closest, evaluate, in_scope
from pruneql.passes.context import Context, Selection


def resolve(ctx: Context) -> Context:
    """Set ``ctx.selections``: one Selection per group a prune statement reaches, with the
    units its amount keeps and the ``skip`` line that leaves it whole, if any."""
    analysis = ctx.analysis
    layers = [l for l in analysis.layers.values() if l.kind in PRODUCER_KINDS]
    skipped = _skipped(ctx.recipe, layers)
    chosen: dict[int, tuple] = {}
    for stmt in ctx.recipe.of(ast.Prune):
        for layer in _matches(stmt, layers, analysis):
            group = analysis.group_of(layer.name)
            _claim(chosen, group, stmt, layer.name)
    ctx.selections = [_selection(group, stmt, names, skipped)
                      for group, stmt, names in sorted(chosen.values(), key=lambda c: c[0].id)]
    return ctx


def _selection(group, stmt, names: tuple, skipped: dict) -> Selection:
    skip = next((skipped[p] for p in group.producers if p in skipped), None)
    floor = group.size if skip else kept_count(group.size, stmt.amount, stmt.round,
                                               stmt.amount.span)
    return Selection(group=group, statement=stmt, selected=names, floor=floor,
                     skipped_by=skip)


def kept_count(n: int, amount, round_to: int | None, span=None) -> int:
    """Kept channels of an ``n``-channel group: floor(n·keep) ≥ 1, then to a multiple.

    >>> from pruneql.lang.ast import Amount
    >>> kept_count(64, Amount("fraction", 0.7), None), kept_count(64, Amount("fraction", 0.7), 8)
    (44, 48)
    """
    if amount.kind == "count" and amount.value > n:
        raise PlanError(f"{describe(amount)}, but a selected group has only {n}",
                        span=span, hint="use a fraction (keep 0.5) or a smaller count")
    kept = amount.kept(n)
    if round_to:
        kept = min(n, max(round_to, round_to * int(kept / round_to + 0.5)))
    return kept


def _select(selectors, scope, where, layers) -> dict:
    """Layers matched by each selector, in layer order."""
    scope_glob = Glob(scope.pattern, scope.span) if scope is not None else None
    found = {}
    for sel in selectors:
        glob = Glob(sel.pattern, sel.span)
        found[sel] = [l for l in layers if glob.match(l.name)
                      and (scope_glob is None or in_scope(scope_glob, l.name))
                      and (where is None or evaluate(where, l.attributes()))]
    return found


def _matches(stmt: ast.Prune, layers, analysis) -> list:
    matched = []
    for sel, found in _select(stmt.selectors, stmt.scope, stmt.where, layers).items():
        if not found:
            raise _nothing(sel, stmt, layers)
        prunable = [l for l in found if _prunable(l, analysis)]
        if not prunable:
            raise _unprunable(sel, found, analysis)
        fitting = [l for l in prunable if analysis.group_of(l.name).unit == stmt.amount.unit]
        if not fitting:
            raise _wrong_unit(sel, stmt, prunable, analysis)
        matched.extend(fitting)
    return matched


def _wrong_unit(sel, stmt: ast.Prune, found: list, analysis) -> PlanError:
    unit = stmt.amount.unit
    have = analysis.group_of(found[0].name).unit
    if have == "channels":
        why = f"'{found[0].name}' is not an attention projection: its groups count channels"
        hint = f"drop '{unit}' from the amount, or select the q/k/v projections"
    elif unit == "channels":
        why = f"'{found[0].name}' is an attention projection: it loses whole heads or " \
              f"head dimensions, not single channels"
        hint = f"write the amount in heads or head_dims, e.g. `keep 0.5 {have}`"
    else:
        why = f"'{found[0].name}' is an attention projection analysed in {have}: PruneQL " \
              f"did not find the {unit} split of its block"
        hint = f"write the amount in {have}, e.g. `keep 0.5 {have}`; see `pruneql plan " \
               f"--groups`"
    return PlanError(f"the unit '{unit}' does not fit selector '{sel.pattern}': {why}",
                     span=stmt.amount.span or sel.span, hint=hint)


def _prunable(layer, analysis) -> bool:
    group = analysis.group_of(layer.name)
    return group is not None and group.prunable


def _nothing(sel, stmt, layers) -> PlanError:
    names = [l.name for l in layers]
    near = closest(sel.pattern.lstrip("/"), names) or closest(
        sel.pattern.rsplit(".", 1)[-1], [n.rsplit(".", 1)[-1] for n in names])
    narrowed = " with its 'in'/'where' conditions" if stmt.scope or stmt.where else ""
    hint = f"closest layer names: {', '.join(near)}" if near else \
        f"layers are named like {', '.join(names[:3])}; see `pruneql plan --groups`"
    return PlanError(f"selector '{sel.pattern}' matches no conv or linear layer{narrowed}",
                     span=sel.span, hint=hint)


def _unprunable(sel, found, analysis) -> PlanError:
    why = []
    for layer in found[:3]:
        group = analysis.group_of(layer.name)
        reason = group.frozen if group is not None and group.frozen else "a single channel"
        why.append(f"{layer.name} ({reason})")
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return PlanError(f"selector '{sel.pattern}' matches only layers that cannot be pruned: "
                     f"{', '.join(why)}{more}", span=sel.span,
                     hint="outputs of the model and channels touched by ops PruneQL does not "
                          "model are frozen; see `pruneql plan --groups`")


def _claim(chosen: dict, group, stmt: ast.Prune, layer_name: str) -> None:
    """Record that ``stmt`` selects ``group`` (through ``layer_name``)."""
    if group.id not in chosen:
        chosen[group.id] = (group, stmt, (layer_name,))
        return
    _, first, names = chosen[group.id]
    if first is not stmt and _how(first) != _how(stmt):
        line = first.span.line if first.span else "?"
        raise PlanError(f"layer '{layer_name}' is coupled with "
                        f"{', '.join(p for p in group.producers[:3] if p != layer_name)}, which "
                        f"line {line} prunes with {_describe(first)}; this statement "
                        f"says {_describe(stmt)}", span=stmt.span,
                        hint="coupled layers are pruned together; give them one amount, or "
                             "`skip` one of them")
    if layer_name not in names:
        chosen[group.id] = (group, first, names + (layer_name,))


def _describe(stmt: ast.Prune) -> str:
    said = f"{describe(stmt.criterion)} {describe(stmt.amount)}"
    return f"'{said}" + (f" round {stmt.round}'" if stmt.round else "'")


def _how(stmt: ast.Prune) -> tuple:
    return (stmt.criterion, stmt.amount, stmt.round)


def _skipped(recipe, layers) -> dict:
    """Layer name -> the skip statement that leaves its output group alone."""
    skipped = {}
    for stmt in recipe.of(ast.Skip):
        for sel, found in _select(stmt.selectors, stmt.scope, stmt.where, layers).items():
            if not found:
                raise _nothing(sel, stmt, layers)
            for layer in found:
                skipped.setdefault(layer.name, stmt)
    return skipped
