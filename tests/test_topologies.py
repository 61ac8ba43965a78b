"""Issue-3 topologies on tiny models: each rule's groups AND the pruned outputs."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import analyzed, group_with, params, prune_with, random_pick

X = torch.randn(2, 3, 8, 8)


def first(k):
    return lambda g: np.arange(min(k, g.size - 1))


def check(ctx):
    assert ctx.verify["passed"]
    assert params(ctx.pruned) == ctx.report.after["params"]
    return dict(ctx.pruned.named_modules())


class ChannelsLast(nn.Module):
    """ConvNeXt-like: permute to NHWC, Linear over channels, layer scale, permute back."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.up, self.down = nn.Linear(6, 12), nn.Linear(12, 6)
        self.gamma = nn.Parameter(torch.rand(6) + 0.5)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        x = self.conv(x)
        y = self.down(F.gelu(self.up(x.permute(0, 2, 3, 1))))
        return self.head(x + (self.gamma * y).permute(0, 3, 1, 2))


def test_channels_last_linear_and_layer_scale():
    ctx = analyzed(ChannelsLast(), X)
    group = group_with(ctx, "conv")
    assert group.producers == ("conv", "down") and not group.frozen
    assert "gamma" in ctx.analysis.params
    assert group_with(ctx, "up").producers == ("up",)
    mods = check(prune_with(ctx, first(2)))
    assert mods["up"].in_features == 4 and mods["up"].out_features == 10
    assert mods["down"].out_features == 4 and ctx.pruned.gamma.shape == (4,)


class LayerNormed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.out = nn.Conv2d(3, 6, 1), nn.LayerNorm(6), nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.out(self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_layer_norm_over_channels_is_frozen():
    ctx = analyzed(LayerNormed(), X)
    assert "LayerNorm over the channels" in group_with(ctx, "conv").frozen


class SplitShuffle(nn.Module):
    """ShuffleNetV2-like: chunk, one branch convolved, cat, channel shuffle by view."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1))
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = self.stem(x)
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.branch(b)], dim=1)
        n, c, h, w = x.size()
        x = x.view(n, 2, 4, h, w).transpose(1, 2).contiguous().view(n, 8, h, w)
        return self.head(x)


def test_chunk_and_channel_shuffle():
    ctx = analyzed(SplitShuffle(), X)
    stem = group_with(ctx, "stem")
    assert not stem.frozen and "branch.2" in stem.producers   # tied by the shuffle's columns
    assert group_with(ctx, "branch.0").producers == ("branch.0",)
    ctx = prune_with(ctx, random_pick(ctx, 3))
    check(ctx)
    code = ctx.pruned.code
    assert "torch.functional.split" in code or "torch.split" in code


class Sliced(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b, self.c = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = self.a(x)
        return self.head(torch.cat([self.b(x) + y[:, 2:4], self.c(x) * y[:, 5:7]], dim=1))


def test_channel_slices_follow_the_removal():
    ctx = analyzed(Sliced(), X)
    group = group_with(ctx, "a")
    assert not group.frozen and set(group.producers) == {"a", "b", "c"}
    ctx = prune_with(ctx, lambda g: [0, 4, 7])          # channels outside both slices
    check(ctx)
    slices = [n.args[1][1] for n in ctx.pruned.graph.nodes
              if n.target is __import__("operator").getitem]
    assert slices == [slice(1, 3), slice(3, 5)]


class Norms(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.act = nn.PReLU(8)
        self.conv2 = nn.Conv2d(8, 6, 1)
        self.inorm = nn.InstanceNorm2d(6, affine=True)
        self.out = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        x = self.act(self.gn(self.conv(x)))
        return self.out(self.inorm(self.conv2(x)))


def test_group_norm_loses_whole_groups_and_prelu_instance_norm_slice():
    ctx = analyzed(Norms(), X)
    assert group_with(ctx, "conv").size == 4                 # four GroupNorm groups
    mods = check(prune_with(ctx, first(1)))
    assert mods["gn"].num_groups == 3 and mods["gn"].num_channels == 6
    assert mods["act"].weight.shape == (6,) and mods["conv"].out_channels == 6
    assert mods["inorm"].num_features == 5 and mods["inorm"].weight.shape == (5,)


class UpNet(nn.Module):
    """U-Net-like: transposed conv, interpolation, skip concatenation."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 4, 3, padding=1)
        self.mid = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(6, 5, 2, stride=2)
        self.side = nn.Conv2d(6, 3, 1)
        self.head = nn.Conv2d(12, 2, 1)

    def forward(self, x):
        e = F.relu(self.enc(x))
        m = F.relu(self.mid(e))
        s = F.interpolate(self.side(m), scale_factor=2.0, mode="nearest")
        return self.head(torch.cat([e, self.up(m), s], dim=1))


def test_transposed_conv_interpolate_and_skip_cat():
    ctx = analyzed(UpNet(), X)
    assert group_with(ctx, "up").producers == ("up",)
    mods = check(prune_with(ctx, first(2)))
    assert mods["up"].in_channels == 4 and mods["up"].out_channels == 3
    assert mods["head"].in_channels == 2 + 3 + 1


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.b(self.b(self.a(x)))


def test_module_called_twice_is_frozen():
    ctx = analyzed(Shared(), X)
    assert "called 2 times" in ctx.analysis.group_of("a").frozen


class Functional(nn.Module):
    """Layers written with torch.nn.functional on parameters of the module itself."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(6, 3, 3, 3) * 0.3)
        self.b1 = nn.Parameter(torch.randn(6) * 0.1)
        self.register_buffer("mean", torch.randn(6) * 0.1)
        self.register_buffer("var", torch.rand(6) + 0.5)
        self.gain = nn.Parameter(torch.rand(6) + 0.5)
        self.w2 = nn.Parameter(torch.randn(4, 6 * 16) * 0.1)

    def forward(self, x):
        x = F.conv2d(x, self.w1, self.b1, stride=2, padding=1)
        x = F.relu(F.batch_norm(x, self.mean, self.var, self.gain, None, False))
        return F.linear(torch.flatten(x, 1), self.w2)


def test_functional_layers_on_get_attr_parameters():
    ctx = analyzed(Functional(), X)
    assert set(ctx.analysis.layers) == {"conv2d", "linear"}
    group = group_with(ctx, "conv2d")
    assert group.prunable and {"mean", "var", "gain"} <= set(ctx.analysis.params)
    mods = check(prune_with(ctx, first(2)))
    assert mods["conv2d"].out_channels == 4 and mods["linear"].in_features == 4 * 16
    assert ctx.pruned.gain.shape == ctx.pruned.mean.shape == (4,)
    assert not hasattr(ctx.pruned, "w1")           # the parameters moved into the module
