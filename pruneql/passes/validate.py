"""Reject what parses but cannot be compiled yet, and statements given twice."""
from __future__ import annotations

from pruneql.errors import NotImplementedStatement, RecipeError
from pruneql.lang import ast
from pruneql.passes.context import Context

_SINGLE = {ast.ModelStmt: "model", ast.InputStmt: "input", ast.StrategyStmt: "strategy",
           ast.Emit: "emit", ast.Target: "target"}


def validate(ctx: Context) -> Context:
    """Raise for statements whose passes are not built and for repeated singletons."""
    for stmt in ctx.recipe.statements:
        _check_built(stmt)
    if ctx.recipe.first(ast.Target) and ctx.recipe.first(ast.Iterate):
        stmt = ctx.recipe.first(ast.Iterate)
        raise NotImplementedStatement("'iterate' together with 'target' is not implemented yet",
                                      span=stmt.span, hint="use one of them")
    for kind, word in _SINGLE.items():
        found = ctx.recipe.of(kind)
        if len(found) > 1:
            first = found[0].span.line if found[0].span else "?"
            raise RecipeError(f"'{word}' is given twice (first on line {first})",
                              span=found[1].span, hint=f"keep one '{word}' statement")
    return ctx


def _check_built(stmt) -> None:
    if isinstance(stmt, ast.Emit) and stmt.format == "onnx":
        raise NotImplementedStatement("'emit onnx' is not implemented yet", span=stmt.span,
                                      hint="use 'emit torchscript' or 'emit export'")
