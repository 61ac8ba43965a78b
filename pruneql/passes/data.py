"""Load the recipe's data source, when a pass needs data, and measure the baseline."""
from __future__ import annotations

from pruneql.criteria import DATA_CRITERIA
from pruneql.data import load_data, parse_cli
from pruneql.errors import DataError, RecipeError
from pruneql.lang import ast
from pruneql.passes.context import Context
from pruneql.training import evaluate, world


def needs_data(recipe) -> list:
    """The statements whose passes read data."""
    return [s for s in recipe.statements
            if isinstance(s, (ast.Finetune, ast.Iterate))
            or (isinstance(s, ast.Skip) and s.sensitive)
            or (isinstance(s, ast.Prune) and s.criterion.name in DATA_CRITERIA)]


def data(ctx: Context) -> Context:
    """Set ``ctx.data`` (sharded per rank under torchrun) and ``ctx.baseline``, the
    model's validation metrics before pruning."""
    stmt = ctx.recipe.first(ast.Data)
    users = needs_data(ctx.recipe)
    if stmt is None and ctx.options.data is None:
        if users:
            raise RecipeError(f"'{_word(users[0])}' needs data, and the recipe has no data "
                              f"source", span=users[0].span,
                              hint="add `data digits;` (or npz, cifar10, imagefolder, "
                                   "python) or pass --data SOURCE[:PATH]")
        return ctx
    source, path = parse_cli(ctx.options.data) if ctx.options.data else (None, None)
    rank, size = world()
    ctx.data = load_data(stmt, source=source, path=path, seed=ctx.options.seed, rank=rank,
                         world_size=size)
    expected = tuple(ctx.example_inputs[0].shape[1:])
    if tuple(ctx.data.input_shape) != expected:
        raise DataError(f"the data's examples have shape {'x'.join(map(str, ctx.data.input_shape))}"
                        f", but the model is traced on {'x'.join(map(str, expected))}",
                        span=stmt.span if stmt is not None and ctx.options.data is None else None,
                        hint="use data that fits the model, or set `input` to the data's shape")
    if len(ctx.data.val) == 0:
        raise DataError("the validation split is empty", hint="use `val` > 0 (e.g. val 0.2)")
    ctx.baseline = evaluate(ctx.gm, ctx.data.val)
    return ctx


def _word(stmt) -> str:
    if isinstance(stmt, ast.Prune):
        return f"by {stmt.criterion.name}"
    if isinstance(stmt, ast.Skip):
        return "skip sensitive"
    return type(stmt).__name__.lower()
