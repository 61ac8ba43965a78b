"""FLOPs and parameters, per layer and in total, before and after removal — computed from
channel counts, so a plan needs no pruned weights.

FLOPs are multiply-adds per example. ``layer_flops`` counts conv and linear layers (Li et
al.'s convention), ``matmul_flops`` every other matrix product the model runs (attention);
``flops`` is their sum, which is what ``torch.utils.flop_counter`` counts (÷ 2).
"""
from __future__ import annotations

from pruneql.graph.channels import layer_flops, layer_params
from pruneql.graph.flops import matmul_rows
from pruneql.lang import describe
from pruneql.latency import compare
from pruneql.passes.context import Context
from pruneql.report import Report


def measure(ctx: Context) -> Context:
    """Set ``ctx.report`` from the analysis and the removal decisions."""
    analysis, cut = ctx.analysis, ctx.cut
    layers = [_layer_row(layer, cut) for layer in analysis.layers.values()]
    total = sum(p.numel() for p in ctx.gm.parameters())
    matmuls = _matmul_rows(ctx.gm, cut)
    flops_b = sum(r["flops"][0] for r in layers)
    flops_a = sum(r["flops"][1] for r in layers)
    extra_b = sum(r["flops"][0] for r in matmuls)
    extra_a = sum(r["flops"][1] for r in matmuls)
    params_a = total - sum(r["params"][0] - r["params"][1] for r in layers) \
        - sum(_param_cut(ctx.gm, p, cut) for p in analysis.params.values())
    ctx.report = Report(model=ctx.model_label, input_shape=list(ctx.example_inputs[0].shape),
                        before={"flops": int(flops_b + extra_b), "params": int(total),
                                "layer_flops": int(flops_b), "matmul_flops": int(extra_b)},
                        after={"flops": int(flops_a + extra_a), "params": int(params_a),
                               "layer_flops": int(flops_a), "matmul_flops": int(extra_a)},
                        matmuls=matmuls,
                        groups=_group_rows(ctx), layers=layers, verify=ctx.verify,
                        accuracy=_accuracy(ctx), history=list(ctx.recovery.get("history", [])),
                        target=_target(ctx), weights=ctx.weights,
                        evaluation=_evaluation(ctx),
                        frontend=ctx.traced.get("frontend"))
    return ctx


def _matmul_rows(gm, cut) -> list:
    """Products other than conv/linear layers, with their FLOPs before and after."""
    before = matmul_rows(gm)
    after = matmul_rows(gm, lambda n: cut.kept_shape(n.name, n.meta.get("pruneql.shape")))
    return [{"node": b["node"], "op": b["op"], "flops": [b["flops"], a["flops"]]}
            for b, a in zip(before, after)]


def _accuracy(ctx: Context) -> dict:
    """The task's metric before, pruned and fine-tuned, on the reported split."""
    if not ctx.baseline:
        return {}
    split, metric = _split(ctx), ctx.task.metric
    found = {"before": ctx.baseline[split][metric]}
    for key in ("pruned", "finetuned"):
        if key in ctx.recovery:
            found[key] = ctx.recovery[key][split][metric]
    return found


def _split(ctx: Context) -> str:
    """Numbers are reported on the test split when there is one (nothing selects on it)."""
    return "test" if "test" in ctx.baseline else "val"


def _evaluation(ctx: Context) -> dict | None:
    """Which task, metric and split the numbers are, and what was selected on what."""
    if not ctx.baseline:
        return None
    split = _split(ctx)
    selected = [what for what, used in (
        ("skip sensitive", bool(ctx.sensitivity)),
        ("best epoch", ctx.recovery.get("selected_on") == "val")) if used]
    return {"task": ctx.task.name, "metric": ctx.task.metric, "split": split,
            "selected_on_val": selected, "optimistic": split == "val" and bool(selected),
            "kept_epoch": ctx.recovery.get("kept_epoch"),
            "before": ctx.baseline[split], **{k: ctx.recovery[k][split] for k in
                                              ("pruned", "finetuned") if k in ctx.recovery}}


def _target(ctx: Context) -> dict | None:
    if not ctx.target:
        return None
    found = dict(ctx.target)
    if found["metric"] == "latency" and ctx.pruned is not None:
        found["measured"] = _measured(ctx)
    return found


def _measured(ctx: Context) -> dict:
    """Real milliseconds of the original and the pruned model, timed alternately."""
    shape = tuple(ctx.example_inputs[0].shape)
    times = compare(ctx.gm.eval(), ctx.pruned.eval(), shape[1:], batches=(shape[0],))
    found = next(iter(times.values()))
    return {"before_ms": found["before"], "after_ms": found["after"],
            "ratio": found["after"] / found["before"]}


def _layer_row(layer, cut) -> dict:
    in_b, in_a = cut.width(layer.in_elems)
    out_b, out_a = cut.width(layer.out_elems)
    return {"name": layer.name, "kind": layer.kind, "index": layer.index,
            "in_channels": [in_b, in_a], "out_channels": [out_b, out_a],
            "flops": [layer_flops(layer, in_b, out_b), layer_flops(layer, in_a, out_a)],
            "params": [layer_params(layer.module, layer.kind, in_b, out_b),
                       layer_params(layer.module, layer.kind, in_a, out_a)]}


def _param_cut(gm, param, cut) -> int:
    """Elements a directly used parameter (layer scale) loses."""
    tensor = gm.get_parameter(param.target) if _is_param(gm, param.target) \
        else gm.get_buffer(param.target)
    gone = int((~cut.keep_mask(param.ids)).sum())
    return gone * tensor.numel() // tensor.shape[param.axis] if _is_param(gm, param.target) else 0


def _is_param(gm, target: str) -> bool:
    try:
        gm.get_parameter(target)
        return True
    except AttributeError:
        return False


def _group_rows(ctx: Context) -> list:
    chosen = {sel.group.id: sel for sel in ctx.selections}
    rows = [_group_row(g, chosen.get(g.id), ctx.analysis, ctx.cut)
            for g in ctx.analysis.groups]
    for row in rows:
        if row["id"] in ctx.sensitivity:     # the accuracy drop when pruned alone
            row["sensitivity"] = round(ctx.sensitivity[row["id"]]["drop"], 6)
        if row["id"] in ctx.score_notes:     # how far to trust its scores (ensemble fit)
            row["scoring"] = dict(ctx.score_notes[row["id"]])
    return rows


def _group_row(group, sel, analysis, cut) -> dict:
    # channels as the first producer sees them; a grouped conv's group counts conv groups
    # as units, so units and channels can differ
    before, after = cut.width(analysis.layers[group.producers[0]].out_elems)
    skip = cut.skipped.get(group.id)
    row = {"id": group.id, "producers": list(group.producers), "members": list(group.members),
           "channels": {"before": before, "after": after},
           "units": {"before": group.size, "after": cut.kept_units(group)},
           "unit": group.unit,
           "prunable": group.prunable, "frozen": group.frozen,
           "selected": sel is not None and skip is None,
           "criterion": None, "amount": None, "line": None, "skipped_line": None}
    if sel is not None:
        stmt = sel.statement
        row.update(criterion=stmt.criterion.name, line=stmt.span.line if stmt.span else None,
                   amount=_amount_text(stmt), selected_by=list(sel.selected))
        if skip is not None:
            row["skipped_line"] = skip.span.line if skip.span else None
    return row


def _amount_text(stmt) -> str:
    return describe(stmt.amount) + (f" round {stmt.round}" if stmt.round else "")
