"""Short recoveries between the rounds of gradual pruning (``iterate … finetune K steps``):
K minibatch updates of the network with the removed channels gated off (Molchanov et al.).
"""
from __future__ import annotations

from pruneql.distributed import agree
from pruneql.graph.copying import own_tensors
from pruneql.graph.gates import gated
from pruneql.lang import ast
from pruneql.passes.context import Context
from pruneql.passes.finetune import hyper_of
from pruneql.training import train_steps


def recover(ctx: Context) -> Context:
    """Train ``ctx.gm`` K steps under the cut's gates; append the mean loss to
    ``ctx.rounds``. Nothing happens without ``iterate … finetune K steps`` or in a plan."""
    steps = ctx.recipe.first(ast.Iterate)
    if steps is None or not steps.finetune_steps or ctx.dry_run:
        return ctx
    if not ctx.rounds:           # the first update: train our own tensors, not the caller's
        own_tensors(ctx.gm, ctx.borrowed)
    agree("gated model", ctx.gm)
    with gated(ctx.gm, ctx.analysis, ctx.cut.removed):
        loss = train_steps(ctx.gm, ctx.data, steps.finetune_steps,
                           hyper_of(ctx.recipe.first(ast.Finetune)), ctx.task)
    ctx.rounds.append({"round": ctx.cut.round, "loss": loss,
                       "kept": int((~ctx.cut.removed).sum())})
    return ctx
