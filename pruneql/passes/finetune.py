"""Recover accuracy: fine-tune the pruned model (Li et al. retrain; Molchanov et al.)."""
from __future__ import annotations

from pruneql.lang import ast
from pruneql.passes.context import Context
from pruneql.training import Hyper, evaluate, train


def hyper_of(stmt: ast.Finetune | None) -> Hyper:
    """Optimiser settings of a ``finetune`` statement; Li et al.'s constant lr 0.001 by default."""
    if stmt is None:
        return Hyper()
    given = {k: getattr(stmt, k) for k in ("epochs", "lr", "momentum", "weight_decay",
                                           "optimizer") if getattr(stmt, k) is not None}
    return Hyper(**given)


def finetune(ctx: Context) -> Context:
    """Measure the pruned accuracy, then train ``epochs`` keeping the best epoch's weights."""
    if ctx.data is None:
        return ctx
    ctx.accuracy["pruned"] = evaluate(ctx.pruned, ctx.data.val)["accuracy"]
    stmt = ctx.recipe.first(ast.Finetune)
    if stmt is None:
        return ctx
    history = train(ctx.pruned, ctx.data, hyper_of(stmt), ctx.progress)
    ctx.accuracy["finetuned"] = history.best_accuracy
    ctx.history = history.epochs
    return ctx
