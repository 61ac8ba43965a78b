"""FLOPs (multiply-adds of conv and linear layers, Li et al.'s convention) and parameters,
per layer and in total, before and after removal — computed from channel counts, so a plan
needs no pruned weights."""
from __future__ import annotations


from pruneql.graph.channels import layer_flops, layer_params
from pruneql.lang import describe
from pruneql.latency import compare
from pruneql.passes.context import Context
from pruneql.report import Report


def measure(ctx: Context) -> Context:
    """Set ``ctx.report`` from the analysis and the removal decisions."""
    analysis, removed = ctx.analysis, ctx.removed
    layers = [_layer_row(layer, analysis, removed) for layer in analysis.layers.values()]
    total = sum(p.numel() for p in ctx.gm.parameters())
    flops_b = sum(r["flops"][0] for r in layers)
    flops_a = sum(r["flops"][1] for r in layers)
    params_a = total - sum(r["params"][0] - r["params"][1] for r in layers) \
        - sum(_param_cut(ctx.gm, p, analysis, removed) for p in analysis.params.values())
    if ctx.target and ctx.target["metric"] == "latency" and ctx.pruned is not None:
        ctx.target["measured"] = _measured(ctx)
    ctx.report = Report(model=ctx.model_label, input_shape=list(ctx.example_inputs[0].shape),
                        before={"flops": int(flops_b), "params": int(total)},
                        after={"flops": int(flops_a), "params": int(params_a)},
                        groups=_group_rows(ctx), layers=layers, verify=ctx.verify,
                        accuracy=dict(ctx.accuracy), history=list(ctx.history),
                        target=ctx.target)
    return ctx


def _measured(ctx: Context) -> dict:
    """Real milliseconds of the original and the pruned model, timed alternately."""
    shape = tuple(ctx.example_inputs[0].shape)
    times = compare(ctx.gm.eval(), ctx.pruned.eval(), shape[1:], batches=(shape[0],))
    found = next(iter(times.values()))
    return {"before_ms": found["before"], "after_ms": found["after"],
            "ratio": found["after"] / found["before"]}


def _width(elems, analysis, removed) -> tuple:
    if elems is None:
        return None, None
    return int(len(elems)), int((~removed[analysis.classes[elems]]).sum())


def _layer_row(layer, analysis, removed) -> dict:
    in_b, in_a = _width(layer.in_elems, analysis, removed)
    out_b, out_a = _width(layer.out_elems, analysis, removed)
    return {"name": layer.name, "kind": layer.kind, "index": layer.index,
            "in_channels": [in_b, in_a], "out_channels": [out_b, out_a],
            "flops": [layer_flops(layer, in_b, out_b), layer_flops(layer, in_a, out_a)],
            "params": [layer_params(layer.module, layer.kind, in_b, out_b),
                       layer_params(layer.module, layer.kind, in_a, out_a)]}


def _param_cut(gm, param, analysis, removed) -> int:
    """Elements a directly used parameter (layer scale) loses."""
    tensor = gm.get_parameter(param.target) if _is_param(gm, param.target) \
        else gm.get_buffer(param.target)
    gone = int(removed[analysis.classes[param.ids]].sum())
    return gone * tensor.numel() // tensor.shape[param.axis] if _is_param(gm, param.target) else 0


def _is_param(gm, target: str) -> bool:
    try:
        gm.get_parameter(target)
        return True
    except AttributeError:
        return False


def _group_rows(ctx: Context) -> list:
    chosen = {sel.group.id: sel for sel in ctx.selections}
    rows = [_group_row(g, chosen.get(g.id), ctx.analysis, ctx.removed)
            for g in ctx.analysis.groups]
    for row in rows:
        if row["id"] in ctx.sensitivity:
            row["sensitivity"] = round(ctx.sensitivity[row["id"]], 6)   # accuracy drop alone
    return rows


def _group_row(group, sel, analysis, removed) -> dict:
    # channels as the first producer sees them; a grouped conv's group counts conv groups
    # as units, so units and channels can differ
    before, after = _width(analysis.layers[group.producers[0]].out_elems, analysis, removed)
    units = group.size - int(removed[group.classes].sum())
    row = {"id": group.id, "producers": list(group.producers), "members": list(group.members),
           "channels": {"before": before, "after": after},
           "units": {"before": group.size, "after": units}, "prunable": group.prunable,
           "frozen": group.frozen, "selected": sel is not None and sel.skipped_by is None,
           "criterion": None, "amount": None, "line": None, "skipped_line": None}
    if sel is not None:
        stmt = sel.statement
        row.update(criterion=stmt.criterion.name, line=stmt.span.line if stmt.span else None,
                   amount=_amount_text(stmt), selected_by=list(sel.selected))
        if sel.skipped_by is not None:
            row["skipped_line"] = sel.skipped_by.span.line if sel.skipped_by.span else None
    return row


def _amount_text(stmt) -> str:
    return describe(stmt.amount) + (f" round {stmt.round}" if stmt.round else "")
