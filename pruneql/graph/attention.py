"""Attention blocks: where a projection's features are split into (heads, head_dim).

Pruning attention removes whole heads, or the same head dimensions from every head: the
reshape into heads needs equal sizes. Before the channel walk, this finds each attention
op (``F.scaled_dot_product_attention``, or the explicit ``softmax(q @ kᵀ) @ v`` of 4-D
matmuls) and, walking up from its operands through the ops that carry heads unchanged
(transposes, unbind/chunk of a fused qkv, rotary embeddings, ``repeat_kv``), the reshapes
that split a projection's last dim into ``(…, heads, head_dim)``. The walker then lays the
channel space of each split either over the heads (``heads``: a head's dims go together)
or over the head dims (``head_dims``: a dim goes in every head) — one view per block.

>>> import torch, torch.nn.functional as F
>>> from pruneql.graph.trace import trace
>>> class Attend(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.qkv = torch.nn.Linear(8, 24)
...     def forward(self, x):
...         q, k, v = self.qkv(x).reshape(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
...         return F.scaled_dot_product_attention(q, k, v)
>>> [(b.producers, sorted(b.splits.values())) for b in find_blocks(trace(Attend(), (torch.randn(2, 5, 8),)))]
[(('qkv',), [(3, 4)])]
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx

HEADS, HEAD_DIMS = "heads", "head_dims"

# ops that carry heads through unchanged (possibly rearranged): walked up through
_THROUGH_METHODS = {"transpose", "permute", "contiguous", "unbind", "chunk", "split", "mul",
                    "add", "sub", "neg", "expand", "unsqueeze", "to", "type_as", "clone",
                    "float", "half", "reshape", "view", "flatten"}
_THROUGH_FUNCTIONS = {operator.getitem, operator.mul, operator.add, operator.sub,
                      operator.neg, torch.cat, torch.transpose, torch.permute, torch.unbind,
                      torch.chunk, torch.split, torch.mul, torch.add, F.dropout}


@dataclass
class Block:
    """One attention op, its head splits ``{node: (heads dim, head_dim dim)}`` (dims of
    the split's output) and the layers producing the split features."""

    attention: str
    splits: dict = field(default_factory=dict)
    producers: tuple = ()


def find_blocks(gm: fx.GraphModule) -> list:
    """Every attention op with the head splits above its operands."""
    blocks = []
    for node in gm.graph.nodes:
        operands = _attention_operands(node)
        if not operands:
            continue
        block = Block(node.name)
        producers: list = []
        for operand in operands:
            for split, roles, producer in _splits_above(operand):
                block.splits[split.name] = roles
                if producer is not None and producer not in producers:
                    producers.append(producer)
        if block.splits:
            block.producers = tuple(producers)
            blocks.append(block)
    return _merged(blocks)


def _merged(blocks: list) -> list:
    """Blocks sharing a split (the explicit form has two matmuls) are one block."""
    merged: list = []
    for block in blocks:
        same = next((m for m in merged if set(m.splits) & set(block.splits)), None)
        if same is None:
            merged.append(block)
            continue
        same.splits.update(block.splits)
        same.producers = tuple(dict.fromkeys(same.producers + block.producers))
    return merged


def _attention_operands(node: fx.Node) -> list:
    if node.op == "call_function" and node.target is F.scaled_dot_product_attention:
        return [a for a in node.args[:3] if isinstance(a, fx.Node)]
    matmul = (node.op == "call_function" and node.target in (torch.matmul, operator.matmul)) \
        or (node.op == "call_method" and node.target == "matmul")
    shape = node.meta.get("pruneql.shape")
    if matmul and shape is not None and len(shape) == 4:
        return [a for a in node.args[:2] if isinstance(a, fx.Node)]
    return []


def _splits_above(start: fx.Node) -> list:
    """(split node, (heads dim, head_dim dim), producer layer) found walking up."""
    found, seen, todo = [], set(), [start]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        roles = head_split(node)
        if roles is not None:
            found.append((node, roles, _producer(node)))
            continue
        if _through(node):
            todo.extend(a for a in node.all_input_nodes)
    return found


def _through(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in _THROUGH_METHODS
    return node.op == "call_function" and node.target in _THROUGH_FUNCTIONS


def head_split(node: fx.Node) -> tuple | None:
    """(heads dim, head_dim dim) when ``node`` reshapes (…, F) into (…, [3,] heads, head_dim)
    with F their product; else None."""
    if not (node.op == "call_method" and node.target in ("view", "reshape")):
        return None
    src = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    before = src.meta.get("pruneql.shape") if src is not None else None
    after = node.meta.get("pruneql.shape")
    if not before or not after or len(after) <= len(before) or len(after) < 4:
        return None
    for k in range(2, len(after) - len(before) + 2):
        if math.prod(after[-k:]) == before[-1] and tuple(after[:-k]) == tuple(before[:-1]) \
                and after[-1] > 1 and after[-2] > 1:
            return len(after) - 2, len(after) - 1
    return None


def _producer(split: fx.Node) -> str | None:
    """The layer whose output the split reshapes (through chunks and getitems)."""
    node = split.args[0]
    for _ in range(8):
        if node.op == "call_module":
            return node.target
        if node.target is operator.getitem and isinstance(node.args[0], fx.Node):
            node = node.args[0]         # one part of a split/chunk/unbind (a tuple)
            continue
        inputs = [a for a in node.all_input_nodes if a.meta.get("pruneql.shape")]
        if len(inputs) != 1:
            return None
        node = inputs[0]
    return None
