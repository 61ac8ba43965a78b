"""Test helpers: run the compiler's passes on a model with a hand-chosen removal."""
from __future__ import annotations

import numpy as np
import torch

from pruneql.graph.cut import Cut
from pruneql.lang.ast import Recipe
from pruneql.passes import channels, inplace, load, measure, modularize, rewrite, trace, verify
from pruneql.passes.context import Context


def analyzed(model, x) -> Context:
    """Trace and analyse ``model`` on input ``x``."""
    ctx = Context(recipe=Recipe(()), model=model.eval(), example_inputs=(x,))
    for step in (load, trace, modularize, channels):
        ctx = step(ctx)
    return ctx


def prune_with(ctx: Context, pick) -> Context:
    """Remove ``pick(group)`` positions of every prunable group, then rewrite, verify, measure."""
    ctx.cut = Cut(ctx.analysis)
    for group in ctx.analysis.groups:
        if group.prunable:
            ctx.cut.remove(group, pick(group))
    for step in (rewrite, inplace, verify, measure):
        ctx = step(ctx)
    return ctx


def random_pick(ctx: Context, seed: int):
    """A picker removing a random non-empty subset of each group (never a whole tensor)."""
    rng = np.random.default_rng(seed)

    def pick(group):
        kept = int(rng.integers(1, group.size))
        return ctx.analysis.choose_removal(group, rng.random(group.size), kept)
    return pick


def group_with(ctx: Context, producer: str):
    group = ctx.analysis.group_of(producer)
    assert group is not None, f"{producer} produces no group"
    return group


def useless_and_essential() -> tuple:
    """``(ctx, batches)``: a 2-3-2 MLP whose hidden unit 0 is read with weight 0 (useless),
    unit 1 carries the label (essential) and unit 2 helps a little; two batches of 32."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 1.0], [4.0, 0.0], [0.0, 1.0]]))
        net[0].bias.copy_(torch.tensor([1.0, 2.0, 1.0]))
        net[2].weight.copy_(torch.tensor([[0.0, 3.0, 0.3], [0.0, -3.0, 0.0]]))
        net[2].bias.copy_(torch.tensor([-6.0, 6.0]))
    ctx = analyzed(net, torch.zeros(2, 2))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 2, generator=gen) * 2 - 1
    y = (x[:, 0] < 0).long()
    return ctx, [(x[:32], y[:32]), (x[32:], y[32:])]


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def outputs_close(a, b, tol=1e-5) -> bool:
    return torch.allclose(a, b, rtol=tol, atol=tol * float(a.abs().max()))


def counted_macs(model, x) -> float:
    """Multiply-adds per example by ``torch.utils.flop_counter.FlopCounterMode`` (÷ 2).

    Attention runs on the math kernel: the counter has no formula for the CPU flash
    kernel of ``scaled_dot_product_attention`` and would count it as zero."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model.eval()(x)
    return counter.get_total_flops() / 2 / len(x)
