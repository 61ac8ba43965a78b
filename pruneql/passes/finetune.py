"""Recover accuracy: fine-tune the pruned model (Li et al. retrain; Molchanov et al.)."""
from __future__ import annotations

from pruneql.distributed import agree
from pruneql.graph.copying import own_tensors
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
    """Set ``ctx.recovery``: the pruned model's validation metrics, and after ``finetune
    epochs N`` the fine-tuned ones and the history (the model is trained in place, on
    tensors of its own)."""
    if ctx.data is None:
        return ctx
    ctx.recovery = {"pruned": evaluate(ctx.pruned, ctx.data.val)}
    stmt = ctx.recipe.first(ast.Finetune)
    if stmt is None:
        return ctx
    own_tensors(ctx.pruned, ctx.borrowed)
    agree("pruned model", ctx.pruned)       # under torchrun: every rank the same
    history = train(ctx.pruned, ctx.data, hyper_of(stmt), ctx.progress)
    ctx.recovery.update(finetuned={"accuracy": history.best_accuracy},
                        history=history.epochs)
    return ctx
