"""Check the pruned model against the original with the removed channels zeroed.

The reference is a generated GraphModule: the traced original with a multiplication by a
0/1 mask after every tensor whose channels lose some (no interpreter). Both run on the
example input with a fresh random example appended (two batch sizes are exercised: the
trace pass already compared the traced graph with the eager model on the same batch).
Each output is compared on its own scale; NaN or infinity anywhere is never a pass.
"""
from __future__ import annotations

import copy
import operator
import warnings

import torch
from torch import fx

from pruneql.errors import VerifyError
from pruneql.graph.compare import TOLERANCE, compare, flat
from pruneql.passes.context import Context


def verify(ctx: Context) -> Context:
    """Raise VerifyError unless every output agrees within 1e-5 of its own scale; set
    ``ctx.verify``."""
    if not ctx.options.verify:
        return ctx
    if ctx.traced.get("batch_error"):
        raise VerifyError(f"cannot verify: the model does not run on a batch of two "
                          f"examples ({ctx.traced['batch_error']})",
                          hint="verification checks a second batch size; make the model "
                               "batch-independent, or pass --no-verify (nothing is proven)")
    inputs = ctx.traced["inputs"]
    with torch.no_grad():
        expected = masked_module(ctx.gm, ctx.cut)(*inputs)
        actual = ctx.pruned(*inputs)
    found = compare(expected, actual)
    if found.undecided:
        raise VerifyError(f"verify cannot decide: {found.failed}",
                          hint="the masked original or the pruned model computes NaN or "
                               "infinity on the check inputs; nothing is written")
    if found.failed:
        raise VerifyError(f"the pruned model differs from the masked original: {found.failed}",
                          hint=_BUG)
    ctx.verify = {"passed": True, "max_rel_error": found.max_error, "tolerance": TOLERANCE,
                  "outputs": found.errors, "batch": len(inputs[0]),
                  "eager_vs_traced": ctx.traced.get("eager")}
    return ctx


def masked_module(gm: fx.GraphModule, cut) -> fx.GraphModule:
    """``gm`` computing as if ``cut``'s channels were removed: each tensor that loses
    channels is multiplied by its keep-mask right where it is produced."""
    with warnings.catch_warnings():     # pytree specs of exported graphs warn when copied
        warnings.simplefilter("ignore", FutureWarning)
        graph = copy.deepcopy(gm.graph)
    root = {n.target: _attr(gm, n.target) for n in graph.nodes
            if n.op in ("get_attr", "call_module")}
    for node in list(graph.nodes):
        mask = _mask(cut, node)
        if mask is None:
            continue
        name = f"_pruneql_mask_{node.name}"
        root[name] = mask
        with graph.inserting_after(node):
            keep = graph.get_attr(name)
        with graph.inserting_after(keep):
            gated = graph.call_function(operator.mul, (node, keep))
        node.replace_all_uses_with(gated, delete_user_cb=lambda user: user is not gated)
    return fx.GraphModule(root, graph).eval()


def _mask(cut, node: fx.Node) -> torch.Tensor | None:
    space = cut.analysis.spaces.get(node.name)
    shape = node.meta.get("pruneql.shape")
    if space is None or shape is None:
        return None
    keep = cut.keep_mask(space.ids)
    if keep.all():
        return None
    dims = [1] * len(shape)
    dims[space.dim:space.dim + keep.ndim] = keep.shape
    dtype = node.meta.get("pruneql.dtype") or torch.float32
    return torch.from_numpy(keep).reshape(dims).to(dtype)


def _attr(gm: fx.GraphModule, target: str):
    owner, _, name = target.rpartition(".")
    return getattr(gm.get_submodule(owner) if owner else gm, name)


def masked_outputs(ctx: Context, inputs: tuple) -> list:
    """The original model's outputs (flattened) with the channels of ``ctx.cut`` zeroed."""
    with torch.no_grad():
        return flat(masked_module(ctx.gm, ctx.cut)(*inputs))


_BUG = ("this is a PruneQL bug: please report it with the recipe; `skip` the group involved "
        "to work around it")
