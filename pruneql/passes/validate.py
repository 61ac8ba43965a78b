"""Check the recipe before any work: statements given twice, statements and options that
parse but are not built, combinations that cannot work, and code the recipe names that
the user did not agree to run."""
from __future__ import annotations

from pruneql.errors import NotImplementedStatement, RecipeError, TrustError
from pruneql.lang import ast
from pruneql.lang.vocabulary import SINGLETONS
from pruneql.passes.context import Context

_KINDS = {ast.ModelStmt: "model", ast.InputStmt: "input", ast.StrategyStmt: "strategy",
          ast.Data: "data", ast.Iterate: "iterate", ast.Finetune: "finetune",
          ast.Emit: "emit", ast.Task: "task", ast.TraceStmt: "trace"}
# (statement or option, what is not built yet): rejected with a clear error, never ignored
UNBUILT: dict = {}


def validate(ctx: Context) -> Context:
    """Raise for repeated singletons, unbuilt statements and untrusted code."""
    _check_singletons(ctx.recipe)
    for stmt in ctx.recipe.statements:
        _check_built(stmt)
    _check_strategy(ctx.recipe)
    for name, stmt, flag in named_code(ctx):
        if not ctx.options.trust_code:
            raise TrustError(f"the recipe names code to run, '{name}'; code named by a "
                             f"recipe runs only with your consent", span=stmt.span,
                             hint=f"pass `{flag}` (the same name on the command line), or "
                                  f"--trust-code if you trust this recipe "
                                  f"(API: trust_code=True)")
    return ctx


def _check_singletons(recipe) -> None:
    for kind, word in _KINDS.items():
        if word in SINGLETONS:
            _once(recipe.of(kind), word)
    for metric in {t.metric for t in recipe.of(ast.Target)}:
        _once([t for t in recipe.of(ast.Target) if t.metric == metric], f"target {metric}")
    if len({t.metric for t in recipe.of(ast.Target)}) > 1:
        second = recipe.of(ast.Target)[1]
        raise NotImplementedStatement("budgets on two metrics at once are not implemented",
                                      span=second.span, hint="keep one `target` statement")


def _once(found, word: str) -> None:
    if len(found) > 1:
        first = found[0].span.line if found[0].span else "?"
        raise RecipeError(f"'{word}' is given twice (first on line {first})",
                          span=found[1].span, hint=f"keep one '{word}' statement")


def named_code(ctx: Context) -> list:
    """(callable, statement, CLI flag) of each callable the recipe itself names and this
    run would import: the model factory, a python data source, a python task."""
    found = []
    stmt = ctx.recipe.first(ast.ModelStmt)
    model_from_recipe = ctx.model is None and ctx.options.model_name is None
    if model_from_recipe and stmt is not None and ":" in stmt.name:
        found.append((stmt.name, stmt, f"--model {stmt.name}"))
    data = ctx.recipe.first(ast.Data)
    if ctx.options.data is None and data is not None and data.source == "python" and data.path:
        found.append((data.path, data, f"--data python:{data.path}"))
    task = ctx.recipe.first(ast.Task)
    if task is not None and task.kind == "python":
        found.append((task.function, task, "--trust-code"))
    return found


def _check_built(stmt) -> None:
    for kind, check in UNBUILT.items():
        if isinstance(stmt, kind):
            problem = check(stmt)
            if problem:
                raise NotImplementedStatement(f"{problem} is not implemented yet",
                                              span=stmt.span,
                                              hint="see the README's language reference")


def _check_strategy(recipe) -> None:
    """Greedy scoring fixes each layer's cut before scoring the next, so it cannot share
    the decision with a budget or a gradual schedule."""
    strategy = recipe.first(ast.StrategyStmt)
    other = recipe.first(ast.Target) or recipe.first(ast.Iterate)
    if strategy is not None and strategy.name == "greedy" and other is not None:
        word = "target" if isinstance(other, ast.Target) else "iterate"
        raise RecipeError(f"'strategy greedy' cannot be combined with '{word}'",
                          span=strategy.span,
                          hint="greedy scores each layer after the cuts of the layers before "
                               "it at their own amounts; drop one of the two statements")


UNBUILT.update({
    ast.Allow: lambda stmt: None if stmt.what == "inexact layernorm" else f"'allow {stmt.what}'",
})
