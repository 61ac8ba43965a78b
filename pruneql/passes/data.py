"""Load the recipe's data source when a pass needs data, settle the task (loss and
metric), and measure the model before pruning on the validation (and test) split."""
from __future__ import annotations

import importlib

from pruneql.criteria import DATA_CRITERIA
from pruneql.data import load_data, parse_cli
from pruneql.errors import DataError, ModelError, RecipeError
from pruneql.lang import ast
from pruneql.passes.context import Context
from pruneql.tasks import Task
from pruneql.training import evaluate, world


def needs_data(recipe) -> list:
    """The statements whose passes read data."""
    return [s for s in recipe.statements
            if isinstance(s, ast.Finetune)
            or (isinstance(s, ast.Iterate) and s.finetune_steps)
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
    kind = task_kind(ctx.recipe)
    ctx.data = load_data(stmt, source=source, path=path, seed=ctx.options.seed, rank=rank,
                         world_size=size, task=kind, progress=ctx.progress)
    expected = tuple(ctx.example_inputs[0].shape[1:])
    if tuple(ctx.data.input_shape) != expected:
        raise DataError(f"the data's examples have shape {'x'.join(map(str, ctx.data.input_shape))}"
                        f", but the model is traced on {'x'.join(map(str, expected))}",
                        span=stmt.span if stmt is not None and ctx.options.data is None else None,
                        hint="use data that fits the model, or set `input` to the data's shape")
    if len(ctx.data.val) == 0:
        raise DataError("the validation split is empty", hint="use `val` > 0 (e.g. val 0.2)")
    ctx.task = _task(ctx, kind)
    ctx.baseline = measured(ctx, ctx.gm)
    return ctx


def measured(ctx: Context, model) -> dict:
    """``{"val": metrics[, "test": metrics]}`` of ``model`` under the recipe's task."""
    found = {"val": evaluate(model, ctx.data.val, ctx.task, ctx.data, "val")}
    if getattr(ctx.data, "test", None) is not None:
        found["test"] = evaluate(model, ctx.data.test, ctx.task, ctx.data, "test")
    return found


def task_statement(recipe):
    """The recipe's ``task`` statement, if any."""
    return recipe.first(ast.Task)


def task_kind(recipe) -> str:
    stmt = task_statement(recipe)
    return stmt.kind if stmt is not None else "classification"


def _task(ctx: Context, kind: str) -> Task:
    if kind != "python":
        return Task.named(kind, getattr(ctx.data, "ignore_index", None))
    stmt = task_statement(ctx.recipe)
    return Task.custom(_call_task(stmt.function, ctx.model, stmt.span))


def _call_task(name: str, model, span):
    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import task function '{name}': {exc}", span=span,
                         hint="the module must be importable (check PYTHONPATH)") from exc
    try:
        return factory(model)
    except Exception as exc:
        raise ModelError(f"task function '{name}' failed: {exc}", span=span,
                         hint="it is called with the model and returns loss or "
                              "(loss, metric)") from exc


def _word(stmt) -> str:
    if isinstance(stmt, ast.Prune):
        return f"by {stmt.criterion.name}"
    if isinstance(stmt, ast.Skip):
        return "skip sensitive"
    return type(stmt).__name__.lower()
