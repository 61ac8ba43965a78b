"""What PruneQL knows about each op's channel behaviour.

Anything absent from these tables is *opaque*: the channels it touches are frozen, never
guessed. Keeping the knowledge in tables (not in string matching on node names) makes it
easy to audit and to extend.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

# modules whose output element depends only on the same input element, whatever the
# layout (activations; dropout, which is the identity in eval mode)
PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
)
# modules acting on the spatial dims (2, 3, ...) of an (N, C, ...) tensor, each channel
# alone: channel-wise only when the channels are at dim 1
SPATIAL_MODULES = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.ZeroPad1d, nn.ZeroPad2d,
    nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d, nn.ReflectionPad1d,
    nn.ReflectionPad2d, nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d,
    nn.ReplicationPad3d,
)
# per-channel normalisation: parameters and buffers are sliced with the channels
# (GroupNorm loses whole groups; LayerNorm over the channels is not exact and is frozen)
NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
                nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm)
CONV_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_TRANSPOSE_MODULES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
LINEAR_MODULES = (nn.Linear,)
# modules the channel analysis models (conv/linear FLOPs are the layer table's); any other
# module with parameters that a trace keeps as one call (nn.MultiheadAttention, a
# TransformerEncoderLayer, a custom leaf) is opaque, and its multiply-adds are measured
MODELLED_MODULES = CONV_MODULES + CONV_TRANSPOSE_MODULES + LINEAR_MODULES + NORM_MODULES + (
    nn.PReLU, nn.LayerNorm, nn.Embedding)


def opaque_leaf(module: nn.Module) -> bool:
    """Whether ``module``, called as one op, hides parameters the analysis cannot see."""
    return not isinstance(module, MODELLED_MODULES) and \
        next(module.parameters(), None) is not None

PASS_FUNCTIONS = {
    F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish,
    F.hardswish, F.hardsigmoid, F.hardtanh, F.softplus, F.sigmoid, F.tanh,
    torch.relu, torch.sigmoid, torch.tanh, torch.abs, torch.neg, torch.exp, torch.sqrt,
    torch.rsqrt, torch.square, operator.neg, F.dropout, F.dropout1d, F.dropout2d,
    F.dropout3d, F.alpha_dropout,
}
SPATIAL_FUNCTIONS = {
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.interpolate,
    F.upsample, F.upsample_nearest, F.upsample_bilinear,
}
PASS_METHODS = {
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "contiguous", "clone",
    "detach", "detach_", "float", "half", "double", "neg", "abs", "exp", "sqrt", "rsqrt",
    "square", "to", "type_as", "round", "pow", "clamp_min", "clamp_max",
}
# elementwise with optional bounds: channel-wise when the bounds are numbers
CLAMP_FUNCTIONS = {torch.clamp, torch.clip}
CLAMP_METHODS = {"clamp", "clamp_", "clip", "clip_"}
# normalise over one dim: channel-wise unless that dim holds channels
SOFTMAX_FUNCTIONS = {torch.softmax, F.softmax, torch.log_softmax, F.log_softmax}
SOFTMAX_METHODS = {"softmax", "log_softmax"}
# size queries: a channel count used as a number (not only as a shape) pins the channels
SIZE_METHODS = {"size"}
# consumers that use sizes only as shapes (their values are recomputed after pruning)
SHAPE_CONSUMER_METHODS = {"view", "reshape", "expand", "new_zeros", "new_ones", "new_empty",
                          "new_full", "flatten", "unflatten", "repeat", "expand_as"}
SHAPE_CONSUMER_FUNCTIONS = {torch.reshape, torch.zeros, torch.ones, torch.empty,
                            torch.full, torch.flatten, torch.unflatten}
# elementwise binary ops: same-shaped operands have their channels coupled one to one
BINARY_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd,
    operator.isub, operator.imul, torch.add, torch.sub, torch.mul, torch.div,
    torch.maximum, torch.minimum,
}
BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_",
                  "maximum", "minimum"}
CAT_FUNCTIONS = {torch.cat, torch.concat}
FLATTEN_FUNCTIONS = {torch.flatten}
RESHAPE_METHODS = {"view", "reshape", "flatten", "unflatten", "reshape_as", "view_as",
                   "unsqueeze", "squeeze"}
RESHAPE_FUNCTIONS = {torch.reshape, torch.unsqueeze, torch.squeeze, torch.unflatten}
# same values, sizes given anew (broadcast): channel-wise while the channel sizes stay
EXPAND_METHODS = {"expand", "expand_as"}
STACK_FUNCTIONS = {torch.stack}
UNBIND_FUNCTIONS = {torch.unbind}
UNBIND_METHODS = {"unbind"}
REDUCE_FUNCTIONS = {torch.mean, torch.sum, torch.amax, torch.amin}
REDUCE_METHODS = {"mean", "sum", "amax", "amin"}
PERMUTE_FUNCTIONS = {torch.permute, torch.transpose}
PERMUTE_METHODS = {"permute", "transpose"}
SPLIT_FUNCTIONS = {torch.split, torch.chunk}
SPLIT_METHODS = {"split", "chunk"}
# results that are not tensors and do not constrain channels
SHAPE_METHODS = {"dim"}


def describe(node) -> str:
    """A short human name for the op a node performs: ``torch.roll``, ``Tensor.view``."""
    if node.op == "call_function":
        mod = getattr(node.target, "__module__", None) or ""
        name = getattr(node.target, "__name__", str(node.target))
        prefix = {"_operator": "operator", "torch._C._nn": "F",
                  "torch.nn.functional": "F"}.get(mod, "torch" if mod.startswith("torch") else mod)
        return f"{prefix}.{name}" if prefix else name
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return str(node.target)
