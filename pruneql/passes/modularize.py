"""Functional convolutions and linears on the model's parameters become modules."""
from __future__ import annotations

from pruneql.graph.modularize import modularize as to_modules
from pruneql.passes.context import Context


def modularize(ctx: Context) -> Context:
    """Edit ``ctx.gm``: ``F.conv2d(x, self.w)`` and the like become module calls (shapes
    recorded by trace are kept on the new nodes)."""
    to_modules(ctx.gm)
    return ctx
