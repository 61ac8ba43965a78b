"""The torch.export front-end: models whose Python torch.fx cannot follow are traced with
non-strict torch.export, then pruned, verified, emitted and reloaded like any other.

The models are small and self-made, with the Python patterns of the real ones (YOLO's
list-chunk iteration, segmentation heads' shape-dependent padding, attention, a detect
head with fixed channel counts, a decoder's Linear → view).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pruneql
from pruneql.errors import TraceError
from tests.helpers import counted_macs

X = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def conv(c_in, c_out, k=1, s=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.SiLU())


class C2f(nn.Module):
    """YOLOv8's block: ``list(x.chunk(2, 1))`` iterated and extended (fx cannot)."""

    def __init__(self, c_in, c_out, n=2):
        super().__init__()
        self.c = c_out // 2
        self.cv1 = conv(c_in, 2 * self.c)
        self.cv2 = conv((2 + n) * self.c, c_out)
        self.m = nn.ModuleList(conv(self.c, self.c, 3) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class Detect(nn.Module):
    """Box and class branches reshaped and concatenated: fixed channel counts out."""

    def __init__(self, c_in, classes=5, bins=4):
        super().__init__()
        self.bins = bins
        self.box = nn.Sequential(conv(c_in, 16, 3), nn.Conv2d(16, 4 * bins, 1))
        self.cls = nn.Sequential(conv(c_in, 16, 3), nn.Conv2d(16, classes, 1))
        self.dfl = nn.Conv2d(bins, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(bins, dtype=torch.float).view(1, bins, 1, 1)

    def forward(self, x):
        b = x.shape[0]
        box = self.box(x).view(b, 4, self.bins, -1).transpose(2, 1).softmax(1)
        box = self.dfl(box).view(b, 4, -1)
        return torch.cat([box, self.cls(x).view(b, -1, box.shape[-1]).sigmoid()], 1)


class TinyYolo(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv(3, 16, 3, 2)
        self.stage = C2f(16, 32)
        self.down = conv(32, 32, 3, 2)
        self.head = Detect(32)

    def forward(self, x):
        return self.head(self.down(self.stage(self.stem(x))))


class PadToMultiple(nn.Module):
    """A branch on the input size (segmentation models pad to their output stride)."""

    def __init__(self):
        super().__init__()
        self.enc = conv(3, 12, 3)
        self.dec = conv(12, 8, 3)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        h = x.shape[-1]
        if h % 8 != 0:
            x = F.pad(x, (0, 8 - h % 8, 0, 8 - h % 8))
        y = F.max_pool2d(self.enc(x), 2)
        y = F.interpolate(self.dec(y), scale_factor=2.0, mode="bilinear")
        return self.out(y)


class Attention(nn.Module):
    """Fused qkv, SDPA, an MLP; iterating the heads defeats fx."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        b, n, c = t.shape
        q, k, v = (p.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
                   for p in self.qkv(t).chunk(3, -1))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        t = t + self.proj(a)
        t = t + self.fc2(F.gelu(self.fc1(t)))
        return self.head(t.mean(1))


class Decoder(nn.Module):
    """A Linear whose features are viewed as (C, H, W), and a per-channel scale."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 16 * 16, 8 * 4 * 4)
        self.scale = nn.Parameter(torch.rand(8) + 0.5)
        self.up = nn.ConvTranspose2d(8, 6, 2, 2)
        self.blur = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.out = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        y = self.fc(x.flatten(1)).view(-1, 8, 4, 4) * self.scale.view(1, -1, 1, 1)
        for _ in range(1):                       # a loop over a range: fine for both
            y = torch.relu(self.up(y))
        return self.out(self.blur(y))


CASES = {
    "tiny_yolo": (TinyYolo, "prune stem.0, stage.cv1.0, stage.m.*.0, down.0 by l1 keep 0.5"),
    "pad_to_multiple": (PadToMultiple, "prune enc.0, dec.0 by l1 keep 0.5"),
    "attention": (Attention, "prune fc1 by l2 keep 0.5"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_front_end_prunes_verifies_emits_and_reloads(name, tmp_path):
    make, recipe = CASES[name]
    model = make().eval()
    with pytest.raises(TraceError):
        pruneql.plan(recipe, model, example_inputs=X, trace="symbolic")
    result = pruneql.compile(recipe, model, example_inputs=X, output=str(tmp_path / "m.pt2"))
    report = result.report.to_dict()
    assert report["frontend"] == "export" and report["verify"]["passed"]
    assert report["after"]["flops"] < report["before"]["flops"]
    assert any(g["channels"]["after"] < g["channels"]["before"] for g in report["groups"])
    reloaded = torch.export.load(result.written["path"]).module()
    wide = torch.randn(3, *X.shape[1:])
    with torch.no_grad():
        assert reloaded(wide).shape == model(wide).shape
        torch.testing.assert_close(reloaded(wide), result.module(wide))
    assert report["before"]["flops"] == pytest.approx(counted_macs(model, X), rel=0.01)
    assert report["after"]["flops"] == pytest.approx(counted_macs(result.module, X), rel=0.01)


def test_selectors_name_the_users_modules():
    report = pruneql.plan("prune stage.m.*.0 by l1 keep 0.5", TinyYolo(), example_inputs=X)
    names = {g["producers"][0] for g in report.to_dict()["groups"] if g["selected"]}
    assert {"stage.m.0.0", "stage.m.1.0"} <= names


def test_detect_outputs_are_a_contract():
    report = pruneql.plan("prune ** by l1 keep 0.5", TinyYolo(), example_inputs=X).to_dict()
    frozen = {p: g["frozen"] for g in report["groups"] for p in g["producers"]}
    assert frozen["head.box.1"] and frozen["head.cls.1"]           # read by the output
    assert frozen["head.dfl"]                                      # its bins are not channels


def test_linear_viewed_as_channels_and_per_channel_scales_prune():
    model = Decoder().eval()
    result = pruneql.compile("prune fc, up by l1 keep 0.5", model, example_inputs=X)
    report = result.report.to_dict()
    assert report["verify"]["passed"]
    fc = next(g for g in report["groups"] if "fc" in g["producers"])
    assert fc["channels"] == {"before": 128, "after": 64} and fc["units"]["after"] == 4
    assert result.module.get_parameter("scale").shape == (4,)
    blur = next(g for g in report["groups"] if "up" in g["producers"])
    assert blur["units"]["after"] == 3 and not blur["frozen"]


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.a(x)
        return y if y.mean() > 0 else -y


def test_a_model_neither_front_end_traces_names_both_reasons():
    with pytest.raises(TraceError) as caught:
        pruneql.plan("prune a by l1 keep 0.5", DataDependent(), example_inputs=X)
    message = str(caught.value)
    assert "symbolic:" in message and "export:" in message and "trace export" in message


class Blur(nn.Module):
    """timm's BlurPool2d: a fixed depthwise filter in a buffer, applied with F.conv2d."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 1)
        self.register_buffer("filt", torch.tensor([1.0, 2.0, 1.0]).outer(
            torch.tensor([1.0, 2.0, 1.0])).div(16).expand(8, 1, 3, 3).clone())

    def forward(self, x):
        y = F.pad(torch.relu(self.a(x)), (1, 1, 1, 1), mode="reflect")
        return self.b(F.conv2d(y, self.filt, stride=2, groups=8))


def test_a_fixed_depthwise_filter_is_sliced_with_its_channels():
    result = pruneql.compile("prune a by l1 keep 0.5", Blur(), example_inputs=X)
    assert result.report.verify["passed"]
    assert result.module.get_buffer("filt").shape == (4, 1, 3, 3)
    assert result.report.after["flops"] == pytest.approx(counted_macs(result.module, X), rel=0.01)


class StdConv(nn.Conv2d):
    """Weight standardisation (BiT, NF-Nets): each filter standardised over its inputs."""

    def forward(self, x):
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         training=True, momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class Standardised(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = StdConv(3, 8, 3, padding=1), StdConv(8, 6, 3)
        self.c = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


@pytest.mark.parametrize("trace", ["symbolic", "export"])
def test_standardised_convs_lose_whole_filters_and_keep_their_inputs(trace):
    report = pruneql.plan("", Standardised(), example_inputs=X, trace=trace).to_dict()
    layers = {l["name"] for l in report["layers"]}
    assert {"a", "b"} <= layers                       # recognised as layers, by name
    frozen = next(g for g in report["groups"] if g["producers"] == ["a"])["frozen"]
    assert "standardised over their inputs" in frozen
    result = pruneql.compile("prune b by l1 keep 0.5", Standardised(), example_inputs=X,
                             trace=trace)
    assert result.report.verify["passed"]
    assert result.module.get_parameter("b.weight").shape == (3, 8, 3, 3)
    assert result.report.after["flops"] == pytest.approx(counted_macs(result.module, X),
                                                         rel=0.01)
