"""Trace the model (in eval mode) and record shapes; check the trace against the model.

Front-ends: ``torch.fx.symbolic_trace``, and non-strict ``torch.export`` for models whose
Python it cannot follow. ``trace auto`` (the default) tries them in that order, moving on
also when a symbolic trace turns out to compute something else than the model; ``trace
symbolic|export`` (recipe or ``--trace``) asks for one.

Shapes are recorded on the example input with a fresh random example appended (a batch of
two): the traced graph's outputs on that batch are kept, and — unless verification is
off — compared with the eager model's, so a trace that specialised a branch, a shape, the
batch size or the training mode is caught here, before anything is pruned.
"""
from __future__ import annotations

import torch

from pruneql.errors import TraceError, VerifyError
from pruneql.graph.compare import compare
from pruneql.graph.export import export_trace
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
            return ctx
        except (TraceError, VerifyError) as exc:
            if isinstance(exc, VerifyError) or len(order) == 1:
                raise
            failures.append((front, exc.message))
    raise TraceError("cannot trace the model: " + "; ".join(
        f"{front}: {why}" for front, why in failures), hint=_HINT)


def _mode(ctx: Context) -> str:
    stmt = next((s for s in ctx.recipe.statements if type(s).__name__ == "TraceStmt"), None)
    return ctx.options.trace or (stmt.mode if stmt is not None else "auto")


def _traced(ctx: Context, front: str, batch: tuple) -> tuple:
    checking = ctx.options.verify and not ctx.dry_run
    gm, batch_error = _front_end(ctx.model, front, batch)
    gm.eval()
    if not checking:                     # shapes alone: the example batch is enough
        propagate_shapes(gm, ctx.example_inputs, fake_ok=True)
        return gm, {"frontend": front, "inputs": None, "outputs": None,
                    "batch_error": batch_error, "eager": None}
    outputs, shape_error = _shapes(gm, batch, ctx.example_inputs, fake_ok=False)
    batch_error = batch_error or shape_error
    traced = {"frontend": front, "inputs": batch if batch_error is None else None,
              "outputs": outputs, "batch_error": batch_error, "eager": None}
    if checking and batch_error is None:
        traced["eager"] = _eager_check(ctx.model, batch, outputs)
    return gm, traced


def _front_end(model, front: str, batch: tuple) -> tuple:
    """(GraphModule, why the batch size is pinned or None)."""
    if front == "symbolic":
        return symbolic_trace(model), None
    try:
        return export_trace(model, batch)
    except Exception as exc:            # torch.export raises many kinds
        raise TraceError(f"torch.export cannot capture the model: {_first_line(exc)}",
                         hint=_HINT) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _shapes(gm, batch: tuple, example: tuple, fake_ok: bool) -> tuple:
    """(outputs on ``batch``, None) or, for a model that only runs at the example's batch
    size, (None, why); shapes are recorded either way."""
    try:
        return propagate_shapes(gm, batch, fake_ok), None
    except TraceError as exc:
        try:
            propagate_shapes(gm, example, fake_ok)
        except TraceError:
            raise exc from None
        return None, exc.message


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
                         f"{found.failed} (on a batch of {len(batch[0])})",
                         hint="the trace specialised something the model decides at run "
                              "time (a branch on a shape or value, the batch size); make "
                              "the module involved a leaf, or remove the data-dependent "
                              "Python from its forward()")
    return {"checked": True, "max_rel_error": found.max_error, "batch": len(batch[0])}
