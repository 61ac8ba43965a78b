"""Shapes without arithmetic: recording a graph's shapes need not run its convolutions.

The output shape of a conv, a linear layer or a BatchNorm follows from its input's shape
and its attributes; only its values need the arithmetic. When no op of the graph has an
output shape that depends on values (every op is one the channel analysis models, see
:mod:`pruneql.graph.ops`), shapes are recorded with those layers replaced by stand-ins:
zeros of the right shape (conv, linear) or the input itself (BatchNorm in eval mode,
activation and dropout modules). The other ops (pooling, adds, reshapes, functional
activations) run for real on those values, so their shapes are torch's own. A layer the
stand-in cannot account for (a subclass, a hook, a shape it would not accept) raises, and
the caller records shapes with a real forward pass instead.

Used when nothing reads the values: plans, and compiles without verification (a compile
with verification runs the real forward, whose outputs it compares with the model's).
"""
from __future__ import annotations

import builtins
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules import module as module_hooks

from pruneql.graph import ops

_CONVS = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}
_NORMS = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}
_ELEMENTWISE = frozenset(ops.PASS_MODULES)     # activations, dropout: the input's shape

# ops whose output shape never depends on the values of their inputs
_SAFE_FUNCTIONS = frozenset().union(
    ops.PASS_FUNCTIONS, ops.SPATIAL_FUNCTIONS, ops.CLAMP_FUNCTIONS, ops.SOFTMAX_FUNCTIONS,
    ops.SHAPE_CONSUMER_FUNCTIONS, ops.BINARY_FUNCTIONS, ops.CAT_FUNCTIONS,
    ops.FLATTEN_FUNCTIONS, ops.RESHAPE_FUNCTIONS, ops.STACK_FUNCTIONS, ops.UNBIND_FUNCTIONS,
    ops.REDUCE_FUNCTIONS, ops.PERMUTE_FUNCTIONS, ops.SPLIT_FUNCTIONS,
    {builtins.getattr, F.pad, F.conv1d, F.conv2d, F.conv3d, F.linear, F.batch_norm,
     F.layer_norm, F.group_norm, torch.conv1d, torch.conv2d, torch.conv3d, torch.matmul,
     operator.matmul, torch.bmm, F.scaled_dot_product_attention, F.normalize, torch.cumsum,
     # elementwise (broadcast shapes), and the checks models make of their sizes
     # (timm's ``_assert(x.shape[1] == C)``): a failing check sends shapes to a real forward
     operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
     operator.floordiv, operator.mod, operator.pow, operator.invert, torch._assert})
_SAFE_METHODS = frozenset().union(
    ops.PASS_METHODS, ops.CLAMP_METHODS, ops.SOFTMAX_METHODS, ops.SIZE_METHODS,
    ops.SHAPE_CONSUMER_METHODS, ops.BINARY_METHODS, ops.RESHAPE_METHODS, ops.EXPAND_METHODS,
    ops.UNBIND_METHODS, ops.REDUCE_METHODS, ops.PERMUTE_METHODS, ops.SPLIT_METHODS,
    ops.SHAPE_METHODS, {"matmul", "bmm", "cos", "sin", "cumsum"})
# where a node used as an index is a size, not a tensor
_SIZE_NODES = {("call_method", "size"), ("call_function", builtins.getattr),
               ("call_function", operator.getitem)}


class NoStandIn(Exception):
    """A layer whose output the stand-in cannot account for: run it for real instead."""


def values_irrelevant(gm: fx.GraphModule) -> bool:
    """Whether every op's output shape in ``gm`` is independent of the values it computes
    on, so stand-ins give the shapes a real forward pass would.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    >>> values_irrelevant(fx.symbolic_trace(net))
    True
    >>> values_irrelevant(fx.symbolic_trace(lambda x: x[x > 0]))
    False
    """
    for node in gm.graph.nodes:
        if node.op == "call_module":
            if not type(gm.get_submodule(node.target)).__module__.startswith("torch.nn."):
                return False
        elif node.op == "call_function":
            if node.target is operator.getitem:
                if any(isinstance(a, fx.Node) and (a.op, a.target) not in _SIZE_NODES
                       for a in _nodes_in(node.args[1:])):
                    return False
            elif node.target not in _SAFE_FUNCTIONS:
                return False
        elif node.op == "call_method" and node.target not in _SAFE_METHODS:
            return False
    return True


def _nodes_in(value) -> list:
    found: list = []
    fx.node.map_arg(value, lambda n: found.append(n) or n)
    return found


def stand_in(module: nn.Module, args: tuple, kwargs: dict):
    """What ``module(*args, **kwargs)`` returns, as far as shapes go, without computing
    it: zeros for a conv or linear layer, the input for a BatchNorm in eval mode or an
    activation. None for any other module (it runs for real); :class:`NoStandIn` when the
    call is not one the stand-in can account for."""
    kind = type(module)
    if kind not in _CONVS and kind is not nn.Linear and kind not in _NORMS \
            and kind not in _ELEMENTWISE:
        return None
    if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor) or _hooked(module):
        raise NoStandIn(f"{kind.__name__} called with hooks or extra arguments")
    x = args[0]
    if kind in _CONVS:
        return x.new_zeros(_conv_shape(module, x.shape, _CONVS[kind]))
    if kind in _ELEMENTWISE:
        return x
    if kind is nn.Linear:
        if x.dim() < 1 or x.shape[-1] != module.in_features:
            raise NoStandIn("linear input width")
        return x.new_zeros((*x.shape[:-1], module.out_features))
    if module.training or x.dim() not in _NORMS[kind] or x.shape[1] != module.num_features:
        raise NoStandIn("batch norm input")
    return x


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks
                or module_hooks._global_forward_hooks
                or module_hooks._global_forward_pre_hooks)


def _conv_shape(conv, shape: torch.Size, k: int) -> tuple:
    """The output shape of ``conv`` on an input of ``shape`` (batched or not).

    >>> _conv_shape(nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.Size([1, 3, 9, 9]), 2)
    (1, 8, 5, 5)
    >>> _conv_shape(nn.Conv1d(3, 8, 3, padding="same", dilation=2), torch.Size([3, 7]), 1)
    (8, 7)
    """
    if len(shape) not in (k + 1, k + 2) or shape[-k - 1] != conv.in_channels:
        raise NoStandIn("conv input channels or rank")
    spatial = []
    for i, size in enumerate(shape[-k:]):
        if conv.padding == "same":
            out = size
        else:
            pad = 0 if conv.padding == "valid" else conv.padding[i]
            reach = conv.dilation[i] * (conv.kernel_size[i] - 1) + 1
            out = (size + 2 * pad - reach) // conv.stride[i] + 1
        if out < 1:
            raise NoStandIn("conv output would be empty")
        spatial.append(out)
    return (*shape[:-k - 1], conv.out_channels, *spatial)
