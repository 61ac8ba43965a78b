"""Trace the model (in eval mode) and record shapes; check the trace against the model.

Front-ends: ``torch.fx.symbolic_trace``, and non-strict ``torch.export`` for models whose
Python it cannot follow. ``trace auto`` (the default) tries them in that order, moving on
also when a symbolic trace turns out to compute something else than the model; ``trace
symbolic|export`` (recipe or ``--trace``) asks for one.

Shapes are recorded on the example input, and — unless verification is off — the traced
graph's outputs there are compared with the eager model's, so a trace that specialised a
branch, a value or the training mode is caught here, before anything is pruned. Where
nothing reads the outputs (plans, ``--no-verify``), shapes are recorded without the
convolutions' arithmetic when no op's shape depends on values (:mod:`pruneql.graph.shapes`). The
verify pass later runs the pruned model against the eager one on the example with a
fresh random example appended (a batch of two), which catches a pinned batch size too.
"""
from __future__ import annotations

import torch

from pruneql.errors import TraceError, VerifyError, first_line
from pruneql.graph.compare import compare
from pruneql.graph.export import export_trace
from pruneql.graph.ops import opaque_leaf
from pruneql.graph.trace import propagate_shapes, second_batch, symbolic_trace
from pruneql.lang import ast
from pruneql.passes.context import Context

FRONT_ENDS = ("symbolic", "export")
_HINT = ("`trace export` (or --trace export) when Python in forward() defeats symbolic "
         "tracing; a module PruneQL cannot follow can be made a leaf; check the input "
         "shape (`input CxHxW` or --input)")


def trace(ctx: Context) -> Context:
    """Set ``ctx.gm`` (shapes in ``node.meta['pruneql.shape']``) and ``ctx.traced``."""
    wanted = _mode(ctx)
    order = FRONT_ENDS if wanted == "auto" else (wanted,)
    batch = second_batch(ctx.example_inputs, ctx.options.seed)
    failures = []
    for front in order:
        try:
            ctx.gm, ctx.traced = _traced(ctx, front, batch)
            ctx.traced["failed"] = failures
            if wanted == "auto" and front == "symbolic":
                _look_inside(ctx, batch)
            return ctx
        except (TraceError, VerifyError) as exc:
            if isinstance(exc, VerifyError) or len(order) == 1:
                raise
            failures.append((front, exc.message))
    raise TraceError("cannot trace the model: " + "; ".join(
        f"{front}: {why}" for front, why in failures), hint=_HINT)


def _look_inside(ctx: Context, batch: tuple) -> None:
    """A symbolic trace that kept modules with parameters as single calls
    (``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``): torch.export decomposes
    them, so the analysis sees their layers. Use its graph when it captures the model."""
    leaves = [n.target for n in ctx.gm.graph.nodes if n.op == "call_module"
              and opaque_leaf(ctx.gm.get_submodule(n.target))]
    if not leaves:
        return
    try:
        gm, traced = _traced(ctx, "export", batch)
    except (TraceError, VerifyError):
        return
    kinds = sorted({type(ctx.gm.get_submodule(t)).__name__ for t in leaves})
    traced["failed"] = ctx.traced["failed"] + [(
        "symbolic", f"keeps {', '.join(kinds)} ('{leaves[0]}'"
                    f"{f' and {len(leaves) - 1} more' if len(leaves) > 1 else ''}) as one "
                    f"call, hiding its layers; torch.export decomposes it")]
    ctx.gm, ctx.traced = gm, traced


def _mode(ctx: Context) -> str:
    stmt = ctx.recipe.first(ast.TraceStmt)
    return ctx.options.trace or (stmt.mode if stmt is not None else "auto")


def _traced(ctx: Context, front: str, batch: tuple) -> tuple:
    """The graph of one front-end, shapes recorded on the example input and, when
    checking, its outputs compared with the eager model's on that input (verify then
    checks the pruned model against the eager one on ``batch``)."""
    checking = ctx.options.verify and not ctx.dry_run
    gm, batch_error = _front_end(ctx.model, front, batch)
    gm.eval()
    outputs = propagate_shapes(gm, ctx.example_inputs, fake_ok=not checking)
    traced = {"frontend": front, "inputs": batch, "batch_error": batch_error, "eager": None}
    if checking:
        traced["eager"] = _eager_check(ctx.model, ctx.example_inputs, outputs)
    return gm, traced


def _front_end(model, front: str, batch: tuple) -> tuple:
    """(GraphModule, why the batch size is pinned or None)."""
    if front == "symbolic":
        return symbolic_trace(model), None
    try:
        return export_trace(model, batch)
    except Exception as exc:            # torch.export raises many kinds
        raise TraceError(f"torch.export cannot capture the model: {first_line(exc, 300)}",
                         hint=_HINT) from exc


@torch.no_grad()
def _eager_check(model, batch: tuple, traced_outputs) -> dict:
    """The traced graph must compute what the model itself computes."""
    found = compare(model(*batch), traced_outputs)
    if found.undecided:
        raise VerifyError(f"the model's outputs on random inputs are not finite, so no check "
                          f"can decide whether the pruned model is right: {found.failed}",
                          hint="give an example input the model computes finite outputs for "
                               "(`input`, --input), or pass --no-verify (nothing is proven)")
    if found.failed:
        raise TraceError(f"the traced graph does not compute what the model computes: "
                         f"{found.failed} (on the example input)",
                         hint="the trace specialised something the model decides at run "
                              "time (a branch on a shape or value, the batch size); make "
                              "the module involved a leaf, or remove the data-dependent "
                              "Python from its forward()")
    return {"checked": True, "max_rel_error": found.max_error, "batch": len(batch[0])}
