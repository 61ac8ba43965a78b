"""Build the channel-dependency graph and its groups."""
from __future__ import annotations

from pruneql.graph.channels import analyze
from pruneql.passes.context import Context


def channels(ctx: Context) -> Context:
    """Set ``ctx.analysis``: channel classes, groups and why frozen groups are frozen."""
    ctx.analysis = analyze(ctx.gm)
    return ctx
