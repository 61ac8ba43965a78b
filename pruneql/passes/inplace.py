"""A speed rewrite of the pruned graph: residual adds become in-place.

``a + b`` becomes ``a += b`` when ``a`` comes straight from a conv, BatchNorm or linear
module and nothing else reads it (torchvision's ``out += identity``): one allocation less
per residual block, a few percent of CPU latency at batch 8. Those modules' backward needs
only their input, so training the result stays correct.
"""
from __future__ import annotations

import operator

from torch import fx, nn

from pruneql.passes.context import Context

_INPLACE_SAFE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Conv1d, nn.Conv2d,
                 nn.Conv3d, nn.Linear)


def inplace(ctx: Context) -> Context:
    """Edit ``ctx.pruned``: eligible residual adds become ``operator.iadd``."""
    gm = ctx.pruned
    modules = dict(gm.named_modules())
    changed = False
    for node in gm.graph.nodes:
        if _eligible(node, modules):
            node.target = operator.iadd
            changed = True
    if changed:
        gm.recompile()
    return ctx


def _eligible(node: fx.Node, modules: dict) -> bool:
    if node.op != "call_function" or node.target is not operator.add or node.kwargs \
            or len(node.args) != 2:
        return False
    left, right = node.args
    return (isinstance(left, fx.Node) and isinstance(right, fx.Node)
            and left.op == "call_module" and isinstance(modules.get(left.target), _INPLACE_SAFE)
            and len(left.users) == 1 and left is not right
            and left.meta.get("pruneql.shape") == node.meta.get("pruneql.shape"))
