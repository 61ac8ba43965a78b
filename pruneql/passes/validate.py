"""Reject what parses but cannot be compiled yet, and statements given twice."""
from __future__ import annotations

from pruneql.errors import NotImplementedStatement, RecipeError
from pruneql.lang import ast
from pruneql.passes.context import Context

_LATER = "it is planned (data-driven passes and budgets come in a later release); remove it"
_UNBUILT = {ast.Data: "data", ast.Iterate: "iterate", ast.Finetune: "finetune",
            ast.Target: "target"}
_DATA_CRITERIA = ("taylor", "activation", "ensemble", "oracle")
_SINGLE = {ast.ModelStmt: "model", ast.InputStmt: "input", ast.StrategyStmt: "strategy",
           ast.Emit: "emit"}


def validate(ctx: Context) -> Context:
    """Raise for statements whose passes are not built and for repeated singletons."""
    for stmt in ctx.recipe.statements:
        _check_built(stmt)
    for kind, word in _SINGLE.items():
        found = ctx.recipe.of(kind)
        if len(found) > 1:
            first = found[0].span.line if found[0].span else "?"
            raise RecipeError(f"'{word}' is given twice (first on line {first})",
                              span=found[1].span, hint=f"keep one '{word}' statement")
    return ctx


def _check_built(stmt) -> None:
    word = _UNBUILT.get(type(stmt))
    if word:
        raise NotImplementedStatement(f"the '{word}' statement is not implemented yet",
                                      span=stmt.span, hint=_LATER)
    if isinstance(stmt, ast.Skip) and stmt.sensitive:
        raise NotImplementedStatement("'skip sensitive' (sensitivity analysis) is not "
                                      "implemented yet", span=stmt.span, hint=_LATER)
    if isinstance(stmt, ast.Prune) and stmt.criterion.name in _DATA_CRITERIA:
        raise NotImplementedStatement(f"the '{stmt.criterion.name}' criterion is not "
                                      f"implemented yet", span=stmt.criterion.span,
                                      hint="use l1, l2 or random for now")
    if isinstance(stmt, ast.Emit) and stmt.format == "onnx":
        raise NotImplementedStatement("'emit onnx' is not implemented yet", span=stmt.span,
                                      hint="use 'emit torchscript' or 'emit export'")
