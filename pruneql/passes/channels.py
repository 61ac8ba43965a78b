"""Build the channel-dependency graph and its groups.

Attention blocks are found first (:mod:`pruneql.graph.attention`): each is analysed in
the ``heads`` view, or in the ``head_dims`` view when a prune statement asks for head
dims of one of its projections.
"""
from __future__ import annotations

from pruneql.graph.attention import HEAD_DIMS, HEADS, find_blocks
from pruneql.graph.channels import analyze
from pruneql.lang import ast
from pruneql.lang.select import Glob, in_scope
from pruneql.passes.context import Context


def channels(ctx: Context) -> Context:
    """Set ``ctx.analysis``: channel classes, groups and why frozen groups are frozen."""
    splits = {}
    for block in find_blocks(ctx.gm):
        view = HEAD_DIMS if _wants_dims(ctx.recipe, block.producers) else HEADS
        for name, roles in block.splits.items():
            splits[name] = (roles, view)
    allowed = {stmt.what for stmt in ctx.recipe.of(ast.Allow)}
    ctx.analysis = analyze(ctx.gm, splits, inexact_layernorm="inexact layernorm" in allowed)
    return ctx


def _wants_dims(recipe, producers: tuple) -> bool:
    """Whether a ``… head_dims`` statement selects one of the block's projections."""
    for stmt in recipe.of(ast.Prune):
        if stmt.amount.unit != HEAD_DIMS:
            continue
        scope = Glob(stmt.scope.pattern) if stmt.scope is not None else None
        for sel in stmt.selectors:
            glob = Glob(sel.pattern)
            if any(glob.match(p) and (scope is None or in_scope(scope, p)) for p in producers):
                return True
    return False
