"""Trace the model with torch.fx and propagate the example input's shapes."""
from __future__ import annotations

from pruneql.graph.trace import trace as fx_trace
from pruneql.passes.context import Context


def trace(ctx: Context) -> Context:
    """Set ``ctx.gm``: the traced model, shapes in ``node.meta['pruneql.shape']``."""
    ctx.gm = fx_trace(ctx.model, ctx.example_inputs)
    return ctx
