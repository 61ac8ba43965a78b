"""Check the pruned model against the original with the removed channels zeroed."""
from __future__ import annotations

import torch
from torch import fx
from torch.utils._pytree import tree_flatten

from pruneql.errors import VerifyError
from pruneql.passes.context import Context

TOLERANCE = 1e-5


class _Masked(fx.Interpreter):
    """Runs the original graph, zeroing removed channels wherever they are produced."""

    def __init__(self, gm: fx.GraphModule, masks: dict):
        super().__init__(gm)
        self.masks = masks

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        drop = self.masks.get(n.name)
        if drop is not None and isinstance(out, torch.Tensor):
            out = out.clone()
            out[drop] = 0
        return out


def masked_outputs(ctx: Context, inputs: tuple) -> list:
    """The original model's outputs with the channels of ``ctx.removed`` zeroed."""
    analysis, removed = ctx.analysis, ctx.removed
    masks = {}
    for name, space in analysis.spaces.items():
        gone = removed[analysis.classes[space.ids]]
        if gone.any():
            masks[name] = (slice(None),) * space.dim + (torch.from_numpy(gone),)
    with torch.no_grad():
        return tree_flatten(_Masked(ctx.gm, masks).run(*inputs))[0]


def verify(ctx: Context) -> Context:
    """Raise VerifyError unless shapes match and outputs agree within 1e-5 relative."""
    if not ctx.options.verify:
        return ctx
    inputs = ctx.example_inputs
    ctx.gm.eval()
    expected = masked_outputs(ctx, inputs)
    with torch.no_grad():
        actual = tree_flatten(ctx.pruned.eval()(*inputs))[0]
    worst = 0.0
    for i, (want, got) in enumerate(zip(expected, actual)):
        if tuple(want.shape) != tuple(got.shape):
            raise VerifyError(f"output {i} has shape {tuple(got.shape)} after pruning, "
                              f"{tuple(want.shape)} before", hint=_BUG)
        scale = want.abs().max().item() or 1.0
        worst = max(worst, (want - got).abs().max().item() / scale)
    if len(expected) != len(actual) or worst > TOLERANCE:
        raise VerifyError(f"the pruned model differs from the masked original "
                          f"(relative error {worst:.2e} > {TOLERANCE:.0e})", hint=_BUG)
    ctx.verify = {"passed": True, "max_rel_error": worst, "tolerance": TOLERANCE}
    return ctx


_BUG = ("this is a PruneQL bug: please report it with the recipe; `skip` the group involved "
        "to work around it")
