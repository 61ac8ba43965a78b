"""Recover accuracy: fine-tune the pruned model (Li et al. retrain; Molchanov et al.)."""
from __future__ import annotations

from pruneql.distributed import agree
from pruneql.lang import ast
from pruneql.passes.context import Context
from pruneql.passes.data import measured
from pruneql.training import Hyper, train


def hyper_of(stmt: ast.Finetune | None) -> Hyper:
    """Optimiser settings of a ``finetune`` statement; Li et al.'s constant lr 0.001 and
    their last-epoch result by default."""
    if stmt is None:
        return Hyper()
    given = {k: getattr(stmt, k, None) for k in ("epochs", "lr", "momentum", "weight_decay",
                                                 "optimizer", "select")}
    return Hyper(**{k: v for k, v in given.items() if v is not None})


def finetune(ctx: Context) -> Context:
    """Set ``ctx.recovery``: the pruned model's metrics (validation, and test when the data
    has a test split), and after ``finetune epochs N`` the fine-tuned ones, the history and
    which epoch was kept (the model is trained in place: rewrite gave it its own copies of
    the caller's tensors)."""
    if ctx.data is None:
        return ctx
    ctx.recovery = {"pruned": measured(ctx, ctx.pruned)}
    stmt = ctx.recipe.first(ast.Finetune)
    if stmt is None:
        return ctx
    agree("pruned model", ctx.pruned)       # under torchrun: every rank the same
    history = train(ctx.pruned, ctx.data, hyper_of(stmt), ctx.progress, ctx.task)
    ctx.recovery.update(finetuned=measured(ctx, ctx.pruned), history=history.epochs,
                        kept_epoch=history.kept_epoch, selected_on=history.selected_on)
    return ctx
