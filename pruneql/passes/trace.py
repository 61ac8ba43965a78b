"""Trace the model (in eval mode) and record shapes; check the trace against the model.

Shapes are recorded on the example input with a fresh random example appended (a batch of
two): the traced graph's outputs on that batch are kept, and — unless verification is
off — compared with the eager model's, so a trace that specialised a branch, a shape, the
batch size or the training mode is caught here, before anything is pruned.
"""
from __future__ import annotations

import torch

from pruneql.errors import TraceError, VerifyError
from pruneql.graph.compare import compare
from pruneql.graph.trace import propagate_shapes, second_batch, symbolic_trace
from pruneql.passes.context import Context


def trace(ctx: Context) -> Context:
    """Set ``ctx.gm`` (shapes in ``node.meta['pruneql.shape']``) and ``ctx.traced``."""
    ctx.gm = symbolic_trace(ctx.model)
    ctx.gm.eval()
    batch = second_batch(ctx.example_inputs, ctx.options.seed)
    checking = ctx.options.verify and not ctx.dry_run
    outputs, batch_error = _shapes(ctx.gm, batch, ctx.example_inputs, fake_ok=not checking)
    ctx.traced = {"frontend": "symbolic", "inputs": batch if batch_error is None else None,
                  "outputs": outputs, "batch_error": batch_error, "eager": None}
    if checking and batch_error is None:
        ctx.traced["eager"] = _eager_check(ctx.model, batch, outputs)
    return ctx


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
