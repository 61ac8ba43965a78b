"""Channel analysis and removal on tiny models: structure of the groups AND outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pruneql.errors import TraceError
from tests.helpers import analyzed, group_with, params, prune_with, random_pick

X = torch.randn(2, 3, 8, 8)


def first(k):
    """Remove the first k channels of every prunable group (capped to leave one)."""
    return lambda g: np.arange(min(k, g.size - 1))


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 5, 3, padding=1)
        self.fc = nn.Linear(5 * 8 * 8, 4)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(self.conv2(x), 1))


def test_chain_groups_and_flatten_linear():
    ctx = analyzed(Chain(), X)
    groups = {g.producers: g for g in ctx.analysis.groups}
    assert set(groups) == {("conv1",), ("conv2",), ("fc",)}
    assert groups[("conv1",)].members == ("conv1", "bn1", "conv2")
    assert groups[("fc",)].frozen == "reaches a model output"
    ctx = prune_with(ctx, first(2))
    pruned = dict(ctx.pruned.named_modules())
    assert pruned["conv1"].out_channels == 4 and pruned["bn1"].num_features == 4
    assert pruned["conv2"].in_channels == 4 and pruned["conv2"].out_channels == 3
    assert pruned["fc"].in_features == 3 * 64        # whole H·W feature blocks removed
    assert ctx.verify["passed"] and params(ctx.pruned) == ctx.report.after["params"]


def test_removed_channels_change_output_and_masked_original_matches():
    ctx = prune_with(analyzed(Chain(), X), first(2))
    from pruneql.passes.verify import masked_outputs

    masked = masked_outputs(ctx, (X,))[0]
    with torch.no_grad():
        assert torch.allclose(ctx.pruned(X), masked, atol=1e-5)
        assert not torch.allclose(ctx.gm(X), masked, atol=1e-3)   # the check has teeth


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a1, self.a2 = nn.Conv2d(8, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
        self.b1, self.b2 = nn.Conv2d(8, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = x + self.a2(F.relu(self.a1(x)))
        x = x + self.b2(F.relu(self.b1(x)))
        return self.head(x)


def test_residual_add_couples_producers():
    ctx = analyzed(Residual(), X)
    group = group_with(ctx, "stem")
    assert group.producers == ("stem", "a2", "b2") and group.size == 8
    assert ctx.analysis.group_of("a1").producers == ("a1",)
    ctx = prune_with(ctx, first(3))
    mods = dict(ctx.pruned.named_modules())
    assert [mods[n].out_channels for n in ("stem", "a2", "b2")] == [5, 5, 5]
    assert mods["head"].in_channels == 5 and ctx.verify["passed"]


class OptionA(nn.Module):
    """A CIFAR-ResNet stage change: strided subsample zero-padded on the channels."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
        return self.head(F.relu(self.conv(x) + short))


def test_option_a_padding_couples_stages_with_offsets():
    ctx = analyzed(OptionA(), X)
    group = group_with(ctx, "conv")
    assert group.producers == ("stem", "conv") and group.size == 8
    # stem channel i is tied to conv channel i + 2 (the padding's offset)
    classes = ctx.analysis.classes
    stem = classes[ctx.analysis.layers["stem"].out_elems]
    conv = classes[ctx.analysis.layers["conv"].out_elems]
    assert (stem == conv[2:6]).all()
    # remove a padding-only channel and a shared one: the pad shrinks in front
    stem_pos, conv_pos = group.filters["stem"], group.filters["conv"]
    ctx = prune_with(ctx, lambda g: [conv_pos[0], stem_pos[1]])
    pad = next(n for n in ctx.pruned.graph.nodes if n.target is F.pad)
    assert pad.args[1] == (0, 0, 0, 0, 1, 2)
    assert dict(ctx.pruned.named_modules())["stem"].out_channels == 3
    assert ctx.verify["passed"]


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 5, 3, padding=1)
        self.fuse = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.fuse(torch.cat([self.a(x), F.relu(self.b(x))], dim=1))


def test_cat_branches_are_separate_groups_with_offsets():
    ctx = analyzed(Concat(), X)
    assert ctx.analysis.group_of("a").producers == ("a",)
    assert ctx.analysis.group_of("b").producers == ("b",)
    ctx = prune_with(ctx, lambda g: [g.size - 1])   # the last channel of each branch
    fuse = dict(ctx.pruned.named_modules())["fuse"]
    original = dict(ctx.gm.named_modules())["fuse"].weight
    kept = [0, 1, 3, 4, 5, 6]                       # 2 (a's last) and 7 (b's last) are gone
    assert torch.equal(fuse.weight, original[:, kept])
    assert ctx.verify["passed"]


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(3, 6, 1)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.bn = nn.BatchNorm2d(6)
        self.project = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        return self.project(F.relu6(self.bn(self.dw(F.relu6(self.expand(x))))))


def test_depthwise_couples_input_and_output():
    ctx = analyzed(Depthwise(), X)
    assert group_with(ctx, "dw").producers == ("expand", "dw")
    ctx = prune_with(ctx, first(2))
    dw = dict(ctx.pruned.named_modules())["dw"]
    assert dw.groups == dw.in_channels == dw.out_channels == 4
    assert ctx.verify["passed"]


class Rolled(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)
        self.c, self.d = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 2, 1)

    def forward(self, x):
        x = self.b(torch.roll(self.a(x), 1, dims=1))
        return self.d(self.c(x))


def test_unknown_op_freezes_its_group_and_names_the_op():
    ctx = analyzed(Rolled(), X)
    assert ctx.analysis.group_of("a").frozen == "op torch.roll is not modelled"
    assert ctx.analysis.group_of("c").prunable
    ctx = prune_with(ctx, first(1))
    mods = dict(ctx.pruned.named_modules())
    assert mods["a"].out_channels == 4 and mods["c"].out_channels == 3
    assert ctx.verify["passed"]


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.g = nn.Conv2d(8, 8, 3, padding=1, groups=2)       # 4 in, 4 out per group
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.out(self.g(self.a(x)))


def test_grouped_conv_loses_whole_groups():
    ctx = analyzed(Grouped(), X)
    group = group_with(ctx, "g")
    assert group.producers == ("a", "g") and group.size == 2    # two groups of 4 channels
    ctx = prune_with(ctx, lambda g: [1])
    mods = dict(ctx.pruned.named_modules())
    assert mods["a"].out_channels == 4 and mods["g"].groups == 1
    assert mods["g"].in_channels == mods["g"].out_channels == 4 and mods["out"].in_channels == 4
    original = dict(ctx.gm.named_modules())["g"].weight
    assert torch.equal(mods["g"].weight, original[:4])        # the second group went
    assert ctx.verify["passed"]


class ViewHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6 * 16, 3)

    def forward(self, x):
        return self.fc(self.conv(x).view(-1, 96))     # a hard-coded feature count


def test_literal_view_size_follows_the_removal():
    ctx = prune_with(analyzed(ViewHead(), X), first(2))
    view = next(n for n in ctx.pruned.graph.nodes if n.target == "view")
    assert view.args[1:] == (-1, 4 * 16)
    assert ctx.verify["passed"]


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 5, 1), nn.Conv2d(4, 2, 1)

    def forward(self, x):
        x = F.relu(self.a(x))
        return self.b(x), {"aux": self.c(x)}


def test_every_output_is_pinned_and_compared():
    ctx = analyzed(TwoOutputs(), X)
    assert ctx.analysis.group_of("b").frozen == ctx.analysis.group_of("c").frozen
    assert ctx.analysis.group_of("a").prunable
    ctx = prune_with(ctx, first(2))
    out = ctx.pruned(X)
    assert out[0].shape == (2, 5, 8, 8) and out[1]["aux"].shape == (2, 2, 8, 8)


def test_model_input_channels_are_never_removed():
    ctx = analyzed(Chain(), X)
    placeholder = next(n for n in ctx.gm.graph.nodes if n.op == "placeholder")
    classes = ctx.analysis.classes[ctx.analysis.spaces[placeholder.name].ids]
    assert all(ctx.analysis.pinned[int(c)] == "model input" for c in classes)


def test_untraceable_model_names_the_module():
    class Inner(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.gate = nn.Conv2d(3, 3, 1), Inner()

        def forward(self, x):
            return self.gate(self.conv(x))

    with pytest.raises(TraceError, match="in module 'gate'"):
        analyzed(Outer(), X)


def test_removal_never_empties_a_tensor():
    ctx = analyzed(Concat(), X)
    group = ctx.analysis.group_of("a")
    drop = ctx.analysis.choose_removal(group, np.zeros(group.size), kept=1)
    assert len(drop) == group.size - 1


def test_random_removals_on_a_mixed_net():
    from tests.nets import RandomNet

    net = RandomNet(("conv", "residual", "cat", "depthwise", "shortcut_a", "pool", "mul"),
                    (3, 4, 2, 5, 3, 2, 3))
    ctx = analyzed(net, X)
    ctx = prune_with(ctx, random_pick(ctx, 1))
    assert ctx.verify["passed"] and params(ctx.pruned) == ctx.report.after["params"]
    assert ctx.report.after["flops"] < ctx.report.before["flops"]
