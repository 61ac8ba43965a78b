"""Multiply-adds of the matrix products that are not conv or linear layers: attention's
``q·kᵀ`` and ``attn·v`` (explicit or inside ``scaled_dot_product_attention``), ``matmul``,
``bmm``, ``einsum``. Counted per example from recorded shapes, before and after a cut
(a product loses the channels its operands lose), and listed apart from the conv/linear
MACs of Li et al.'s convention.

>>> import torch
>>> from pruneql.graph.trace import trace
>>> class Attend(torch.nn.Module):
...     def forward(self, q):
...         return torch.softmax(q @ q.transpose(-2, -1), -1) @ q
>>> gm = trace(Attend(), (torch.randn(2, 5, 8),))
>>> [(r["op"], r["flops"]) for r in matmul_rows(gm)]
[('matmul', 200), ('matmul', 200)]
"""
from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import fx

_MATMUL_FUNCTIONS = {torch.matmul, operator.matmul, torch.bmm, torch.mm}
_MATMUL_METHODS = {"matmul", "bmm", "mm", "__matmul__"}
_ADD_MATMUL = {torch.baddbmm, torch.addmm, torch.addbmm}
_ADD_MATMUL_METHODS = {"baddbmm", "addmm", "addbmm"}


def matmul_rows(gm: fx.GraphModule, shape_of=None) -> list:
    """``[{"node", "op", "flops"}]``: per example multiply-adds of each product.

    ``shape_of(node)`` gives an operand's shape (default: the recorded one; a cut passes
    the pruned shape)."""
    shape_of = shape_of or (lambda n: n.meta.get("pruneql.shape"))
    batch = batch_of(gm)
    rows = []
    for node in gm.graph.nodes:
        macs = node_macs(node, shape_of)
        if macs is not None:
            rows.append({"node": node.name, "op": _op(node), "flops": int(macs // batch)})
        elif node.meta.get("pruneql.leaf_macs"):      # a module kept as one call (frozen)
            kind = type(gm.get_submodule(node.target)).__name__
            rows.append({"node": node.name, "op": kind,
                         "flops": int(node.meta["pruneql.leaf_macs"] // batch)})
    return rows


def batch_of(gm: fx.GraphModule) -> int:
    """The batch size the shapes were recorded at (the first input's leading dim)."""
    for node in gm.graph.nodes:
        shape = node.meta.get("pruneql.shape") if node.op == "placeholder" else None
        if shape:
            return max(1, int(shape[0]))
    return 1


def _op(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def node_macs(node: fx.Node, shape_of):
    """Multiply-adds of ``node`` if it is a matrix product (whole batch), else None."""
    if node.op == "call_function" and node.target is F.scaled_dot_product_attention:
        return _attention(node, shape_of)
    if node.op == "call_function" and node.target is torch.einsum:
        return _einsum(node, shape_of)
    pair = _operands(node)
    if pair is None:
        return None
    shapes = [shape_of(a) if isinstance(a, fx.Node) else None for a in pair]
    if any(s is None for s in shapes):
        return None
    return _product(*shapes)


def _operands(node: fx.Node):
    if node.op == "call_function" and node.target in _MATMUL_FUNCTIONS:
        return node.args[:2]
    if node.op == "call_method" and node.target in _MATMUL_METHODS:
        return node.args[:2]
    if (node.op == "call_function" and node.target in _ADD_MATMUL) or \
            (node.op == "call_method" and node.target in _ADD_MATMUL_METHODS):
        return node.args[1:3]
    return None


def _product(a: tuple, b: tuple) -> int:
    """Multiply-adds of ``a @ b`` with torch.matmul's broadcasting."""
    a, b = list(a), list(b)
    if len(a) == 1:
        a = [1] + a
    if len(b) == 1:
        b = b + [1]
    n, k, m = a[-2], a[-1], b[-1]
    lead_a, lead_b = a[:-2], b[:-2]
    width = max(len(lead_a), len(lead_b))
    lead_a, lead_b = [1] * (width - len(lead_a)) + lead_a, [1] * (width - len(lead_b)) + lead_b
    batch = math.prod(max(x, y) for x, y in zip(lead_a, lead_b))
    return batch * n * k * m


def _attention(node: fx.Node, shape_of):
    args = list(node.args) + [None] * 3
    q, k, v = (node.kwargs.get(n, a) for n, a in zip(("query", "key", "value"), args[:3]))
    shapes = [shape_of(t) if isinstance(t, fx.Node) else None for t in (q, k, v)]
    if any(s is None for s in shapes):
        return None
    (qs, ks, vs) = shapes
    lead = math.prod(qs[:-2])
    return lead * qs[-2] * ks[-2] * (qs[-1] + vs[-1])


def _einsum(node: fx.Node, shape_of):
    equation, *operands = node.args
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    if not isinstance(equation, str) or len(operands) != 2 or "..." in equation:
        return None
    shapes = [shape_of(t) if isinstance(t, fx.Node) else None for t in operands]
    if any(s is None for s in shapes):
        return None
    inputs = equation.replace(" ", "").split("->")[0].split(",")
    sizes = {}
    for letters, shape in zip(inputs, shapes):
        for letter, size in zip(letters, shape):
            sizes[letter] = max(size, sizes.get(letter, 1))
    return math.prod(sizes.values())
