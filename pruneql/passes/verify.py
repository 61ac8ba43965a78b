"""Check the pruned model against the original with the removed channels zeroed.

The pruned model runs on the example input with a fresh random example appended (a batch
of two, so a pinned batch size or an error across examples shows). The reference is the
user's own model — eager, not the traced graph the pruned model was derived from — with
the removed channels zeroed where layers read them (gates: forward pre-hooks), run one
example at a time (half the activation memory) and on the batch of two when that does not
match. Where gates cannot be arranged (a layer reads channels outside any module of the
model, or recovery steps have trained the traced copy), the reference is the traced graph
with a 0/1 mask multiplied in after every tensor that loses channels, and the traced graph
is compared with the eager model on the same batch first. Each output is compared on its
own scale; NaN or infinity anywhere is never a pass.
"""
from __future__ import annotations

import operator

import torch
from torch import fx

from pruneql.errors import VerifyError, first_line
from pruneql.graph.compare import TOLERANCE, compare, flat
from pruneql.graph.copying import graph_copy
from pruneql.graph.gates import gated, input_masks
from pruneql.graph.modularize import attribute
from pruneql.passes.context import Context


def verify(ctx: Context) -> Context:
    """Raise VerifyError unless every output agrees within 1e-5 of its own scale; set
    ``ctx.verify``."""
    if not ctx.options.verify:
        return ctx
    if ctx.traced.get("batch_error"):
        raise VerifyError(f"cannot verify: the model does not run on a batch of two "
                          f"examples ({ctx.traced['batch_error']})",
                          hint="verification checks a second batch size; make the model "
                               "batch-independent, or pass --no-verify (nothing is proven)")
    inputs = ctx.traced["inputs"]
    actual = _run(ctx.pruned, inputs, "the pruned model")
    if _inexact(ctx):
        return _measure_deviation(ctx, inputs, actual)
    found, method = None, "eager model, gated"
    if _gateable(ctx):
        with gated(ctx.model, ctx.analysis, ctx.cut.removed):
            found = _against(ctx.model, inputs, actual)
    if found is None or found.failed:
        _trace_holds(ctx, inputs)
        found, method = compare(_run(masked_module(ctx.gm, ctx.cut), inputs, "the model"),
                                actual), "traced graph, masked"
    _raise_on(found)
    ctx.verify = {"passed": True, "max_rel_error": found.max_error, "tolerance": TOLERANCE,
                  "outputs": found.errors, "batch": len(inputs[0]), "reference": method,
                  "eager_vs_traced": ctx.traced.get("eager")}
    return ctx


def _against(model, inputs: tuple, actual):
    """``model``'s outputs on ``inputs`` compared with ``actual``: run one example at a
    time first (half the activation memory of the batch), and on the whole batch when that
    is not a match (an output that is not per example, a model that mixes its examples)."""
    runs = [_run(model, _example(inputs, i), "the model") for i in range(len(inputs[0]))]
    found = compare(_stacked(runs), actual)
    if found.failed:
        found = compare(_run(model, inputs, "the model"), actual)
    return found


def _example(inputs: tuple, i: int) -> tuple:
    """Example ``i`` of a batch (tensors with a batch dim; other inputs as they are)."""
    return tuple(t[i:i + 1] if isinstance(t, torch.Tensor) and t.dim() >= 1 else t
                 for t in inputs)


def _stacked(runs: list) -> list:
    """The flattened outputs of one-example runs joined along the batch; an output without
    a batch dim of one is taken from the first run (a mismatch then sends the caller to a
    batch run)."""
    outputs = [flat(r) for r in runs]
    if any(len(o) != len(outputs[0]) for o in outputs):
        return outputs[0]
    return [torch.cat(same) if all(t.dim() >= 1 and t.shape[0] == 1 for t in same)
            else same[0] for same in zip(*outputs)]


@torch.no_grad()
def _run(model, inputs: tuple, what: str):
    try:
        return model.eval()(*inputs)
    except Exception as exc:
        raise VerifyError(f"cannot verify: {what} does not run on a batch of "
                          f"{len(inputs[0])} examples: {first_line(exc, 300)}",
                          hint="verification runs a second batch size; a model that "
                               "pins its batch size cannot be checked (--no-verify proves "
                               "nothing)") from exc


def _inexact(ctx: Context) -> list:
    """LayerNorms pruned by consent (``allow inexact layernorm``) that lose channels."""
    return [name for name in ctx.analysis.inexact
            if not ctx.cut.keep_mask(ctx.analysis.spaces[name].ids).all()]


def _measure_deviation(ctx: Context, inputs: tuple, actual) -> Context:
    """Not equivalent by construction: report how far the pruned model is from the masked
    original, never a pass."""
    _trace_holds(ctx, inputs)
    found = compare(_run(masked_module(ctx.gm, ctx.cut), inputs, "the model"), actual)
    if found.undecided:
        _raise_on(found)
    ctx.verify = {"passed": False, "exact": False, "allowed": "inexact layernorm",
                  "max_rel_error": found.max_error, "outputs": found.errors,
                  "tolerance": TOLERANCE, "batch": len(inputs[0]),
                  "inexact": _inexact(ctx), "reference": "traced graph, masked"}
    return ctx


def _gateable(ctx: Context) -> bool:
    """Whether every layer whose input loses channels is a module of the user's model
    under the same name (and the traced copy was not trained since)."""
    if ctx.rounds:
        return False
    modules = dict(ctx.model.named_modules())
    layers = ctx.analysis.layers
    return all(name in modules and isinstance(modules[name], type(layers[name].module))
               for name in input_masks(ctx.analysis, ctx.cut.removed))


def _trace_holds(ctx: Context, inputs: tuple) -> None:
    """The traced graph computes what the eager model computes on ``inputs``."""
    if ctx.rounds:               # recovery steps trained the traced copy: no eager twin
        return
    found = compare(_run(ctx.model, inputs, "the model"), _run(ctx.gm, inputs, "the graph"))
    if found.failed:
        raise VerifyError(f"the traced graph does not compute what the model computes on a "
                          f"batch of {len(inputs[0])}: {found.failed}",
                          hint="the trace specialised something the model decides at run "
                               "time; try `trace export`, or make the module a leaf")


def _raise_on(found) -> None:
    if found.undecided:
        raise VerifyError(f"verify cannot decide: {found.failed}",
                          hint="the model or the pruned model computes NaN or infinity on "
                               "the check inputs; nothing is written")
    if found.failed:
        raise VerifyError(f"the pruned model differs from the masked original: {found.failed}",
                          hint=_BUG)


def masked_module(gm: fx.GraphModule, cut) -> fx.GraphModule:
    """``gm`` computing as if ``cut``'s channels were removed: each tensor that loses
    channels is multiplied by its keep-mask right where it is produced."""
    graph = graph_copy(gm.graph)
    root = {n.target: attribute(gm, n.target) for n in graph.nodes
            if n.op in ("get_attr", "call_module")}
    for node in list(graph.nodes):
        mask = _mask(cut, node)
        if mask is None:
            continue
        name = f"_pruneql_mask_{node.name}"
        root[name] = mask
        with graph.inserting_after(node):
            keep = graph.get_attr(name)
        with graph.inserting_after(keep):
            gated = graph.call_function(operator.mul, (node, keep))
        node.replace_all_uses_with(gated, delete_user_cb=lambda user: user is not gated)
    return fx.GraphModule(root, graph).eval()


def _mask(cut, node: fx.Node) -> torch.Tensor | None:
    space = cut.analysis.spaces.get(node.name)
    shape = node.meta.get("pruneql.shape")
    if space is None or shape is None:
        return None
    keep = cut.keep_mask(space.ids)
    if keep.all():
        return None
    dims = [1] * len(shape)
    dims[space.dim:space.dim + keep.ndim] = keep.shape
    dtype = node.meta.get("pruneql.dtype") or torch.float32
    return torch.from_numpy(keep).reshape(dims).to(dtype)


def masked_outputs(ctx: Context, inputs: tuple) -> list:
    """The original model's outputs (flattened) with the channels of ``ctx.cut`` zeroed."""
    with torch.no_grad():
        return flat(masked_module(ctx.gm, ctx.cut)(*inputs))


_BUG = ("this is a PruneQL bug: please report it with the recipe; `skip` the group involved "
        "to work around it")
