"""Model zoo: structure, exact parameter / MAC oracles (PAPERS.md §1), fx-traceability,
deterministic builds.

MACs = multiply-adds of Conv2d and Linear layers only (BN, ReLU, pooling not counted), batch 1.
"""
from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from pruneql import zoo
from pruneql.zoo.resnet import BasicBlock, Bottleneck
from pruneql.zoo.resnet_cifar import OptionAShortcut, resnet_cifar

ALL = ["resnet110_cifar", "resnet18", "resnet34", "resnet50", "resnet56_cifar", "vgg16_cifar"]
NUM_CLASSES = {"vgg16_cifar": 10, "resnet56_cifar": 10, "resnet110_cifar": 10,
               "resnet18": 1000, "resnet34": 1000, "resnet50": 1000}
IMAGENET = ("resnet18", "resnet34", "resnet50")

# Exact parameter counts (all parameters, BN included).
PARAMS = {
    "vgg16_cifar": 14_987_722,       # PAPERS.md: ~14.98M
    "resnet56_cifar": 853_018,
    "resnet110_cifar": 1_727_962,    # PAPERS.md: ~1.73M (1.72e6 in Table 1)
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
}
# Parameters excluding BatchNorm affine parameters.
PARAMS_NO_BN = {
    "vgg16_cifar": 14_978_250,
    "resnet56_cifar": 848_954,       # PAPERS.md oracle
    "resnet110_cifar": 1_719_866,
    "resnet34": 21_780_648,          # PAPERS.md: 21.78M
}
# MACs at 1 x input_shape: (conv only, conv + linear).
MACS = {
    "vgg16_cifar": (313_196_544, 313_463_808),          # 3.1320e8 / 3.1346e8
    "resnet56_cifar": (125_485_056, 125_485_056 + 640),  # PAPERS.md oracle is conv-only
    "resnet110_cifar": (252_887_040, 252_887_040 + 640),
    "resnet18": (1_813_561_344, 1_814_073_344),
    "resnet34": (3_663_249_408, 3_663_761_408),          # ~3.664e9
    "resnet50": (4_087_136_256, 4_089_184_256),          # ~4.09e9
}
# conv + linear MACs without the 1x1 projection (downsample) convs.
MACS_NO_PROJ = {"resnet34": 3_644_493_824}               # 3.6445e9, matches Li et al.


# --------------------------------------------------------------------------- helpers

def count_macs(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, int], torch.Tensor]:
    """Per-module MACs of Conv2d / Linear layers for one forward pass, and the output."""
    per: dict[str, int] = {}
    handles = []

    def hook_for(name: str):
        def hook(m, inputs, out):
            batch = out.shape[0]
            if isinstance(m, nn.Conv2d):
                kh, kw = m.kernel_size
                n = out.numel() // batch * (m.in_channels // m.groups) * kh * kw
            else:
                n = m.out_features * m.in_features
            per[name] = per.get(name, 0) + n
        return hook

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            handles.append(m.register_forward_hook(hook_for(name)))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return per, out


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def n_params_no_bn(model: nn.Module) -> int:
    return sum(p.numel() for m in model.modules()
               if not isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
               for p in m.parameters(recurse=False))


def assert_same_state(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


_CACHE: dict[str, nn.Module] = {}


def model(name: str) -> nn.Module:
    """zoo.build(name, seed=0), built once per test session (tests must not mutate it)."""
    if name not in _CACHE:
        _CACHE[name] = zoo.build(name, seed=0)
    return _CACHE[name]


_MACS: dict[str, tuple[dict[str, int], torch.Tensor]] = {}


def macs_of(name: str) -> tuple[dict[str, int], torch.Tensor]:
    """One forward at the entry's input shape (batch 1), cached: resnet50 @224 runs once."""
    if name not in _MACS:
        torch.manual_seed(1)
        x = torch.randn(1, *zoo.entry(name).input_shape)
        _MACS[name] = count_macs(model(name), x)
    return _MACS[name]


# --------------------------------------------------------------------------- registry

def test_registry_api():
    assert set(ALL) <= set(zoo.names()) and zoo.names() == sorted(zoo.ZOO)
    for name in ALL:
        e = zoo.entry(name)
        assert isinstance(e, zoo.ZooEntry) and e.name == name and callable(e.factory)
        assert e.input_shape == ((3, 224, 224) if name in IMAGENET else (3, 32, 32))
        assert e.description
    assert "Li et al. 2017" in zoo.entry("vgg16_cifar").paper
    with pytest.raises(KeyError):
        zoo.entry("vgg17")
    with pytest.raises(KeyError):
        zoo.build("nope")
    with pytest.raises(ValueError):
        zoo.register(zoo.entry("resnet18"))
    with pytest.raises(Exception):
        zoo.entry("resnet18").name = "x"   # frozen


# --------------------------------------------------------------------------- oracles

@pytest.mark.parametrize("name", ALL)
def test_param_count(name):
    m = model(name)
    assert n_params(m) == PARAMS[name]
    if name in PARAMS_NO_BN:
        assert n_params_no_bn(m) == PARAMS_NO_BN[name]


def test_vgg_params_near_paper():
    assert abs(n_params(model("vgg16_cifar")) - 14.98e6) / 14.98e6 < 0.005


@pytest.mark.parametrize("name", ALL)
def test_macs_and_output_shape(name):
    per, out = macs_of(name)
    m = model(name)
    linear = {n for n, mod in m.named_modules() if isinstance(mod, nn.Linear)}
    conv_only = sum(v for k, v in per.items() if k not in linear)
    assert (conv_only, sum(per.values())) == MACS[name]
    if name in MACS_NO_PROJ:
        assert sum(v for k, v in per.items() if "downsample" not in k) == MACS_NO_PROJ[name]
    assert out.shape == (1, NUM_CLASSES[name])
    assert torch.isfinite(out).all()


def test_macs_match_paper_rounding():
    assert round(MACS["vgg16_cifar"][0] / 1e4) == 31320
    assert round(MACS["vgg16_cifar"][1] / 1e4) == 31346
    assert round(MACS["resnet34"][1] / 1e6) == 3664
    assert round(MACS["resnet50"][1] / 1e7) == 409


# --------------------------------------------------------------------------- fx

@pytest.mark.parametrize("name", ALL)
def test_fx_trace_matches_eager(name):
    m = model(name)
    gm = torch.fx.symbolic_trace(m)
    # ImageNet nets are checked at 64x64 (adaptive pooling) to keep the file fast.
    shape = (3, 64, 64) if name in IMAGENET else zoo.entry(name).input_shape
    torch.manual_seed(2)
    x = torch.randn(1, *shape)
    with torch.no_grad():
        ref = m(x)
        got = gm(x)
    assert got.shape == (1, NUM_CLASSES[name])
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    # Every conv of the model appears in the graph.
    convs = {n for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d)}
    called = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    assert convs <= called


# --------------------------------------------------------------------------- build

@pytest.mark.parametrize("name", ALL)
def test_build_deterministic_and_rng_untouched(name):
    torch.manual_seed(12345)
    before = torch.get_rng_state()
    again = zoo.build(name)                      # seed 0 again, from a different caller state
    assert torch.equal(torch.get_rng_state(), before)
    assert_same_state(model(name).state_dict(), again.state_dict())
    assert not any(mod.training for mod in again.modules())
    other = zoo.build(name, seed=1)
    w0 = next(model(name).parameters())
    w1 = next(other.parameters())
    assert not torch.equal(w0, w1)


def test_build_kwargs_num_classes():
    for name, shape in (("vgg16_cifar", (3, 32, 32)), ("resnet56_cifar", (3, 32, 32)),
                        ("resnet18", (3, 64, 64))):
        m = zoo.build(name, num_classes=7)
        with torch.no_grad():
            assert m(torch.zeros(1, *shape)).shape == (1, 7)


# --------------------------------------------------------------------------- VGG

def test_vgg16_layout():
    m = model("vgg16_cifar")
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    root = dict(m.named_children())
    c_in = 3
    for i, w in enumerate(widths, 1):
        conv, bn = root[f"conv{i}"], root[f"bn{i}"]
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        assert (conv.in_channels, conv.out_channels) == (c_in, w)
        assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)
        assert conv.bias is None and bn.num_features == w
        c_in = w
    assert isinstance(root["fc1"], nn.Linear) and (root["fc1"].in_features,
                                                   root["fc1"].out_features) == (512, 512)
    assert isinstance(root["bn14"], nn.BatchNorm1d) and root["bn14"].num_features == 512
    assert (root["fc2"].in_features, root["fc2"].out_features) == (512, 10)
    assert not any(isinstance(x, nn.Dropout) for x in m.modules())
    # Order of execution: pools after conv2, 4, 7, 10, 13.
    gm = torch.fx.symbolic_trace(m)
    seq = [n.target for n in gm.graph.nodes
           if n.op == "call_module" and (n.target.startswith(("conv", "pool", "fc")))]
    expect = []
    for i in range(1, 14):
        expect.append(f"conv{i}")
        if i in (2, 4, 7, 10, 13):
            expect.append(f"pool{(2, 4, 7, 10, 13).index(i) + 1}")
    assert seq == expect + ["fc1", "fc2"]
    # Spatial 32 -> 16 -> 8 -> 4 -> 2 -> 1.
    sizes = []
    hs = [getattr(m, f"pool{j}").register_forward_hook(lambda mod, i, o: sizes.append(o.shape[-1]))
          for j in range(1, 6)]
    with torch.no_grad():
        m(torch.zeros(1, 3, 32, 32))
    for h in hs:
        h.remove()
    assert sizes == [16, 8, 4, 2, 1]


# --------------------------------------------------------------------------- CIFAR ResNet

@pytest.mark.parametrize("name,n", [("resnet56_cifar", 9), ("resnet110_cifar", 18)])
def test_cifar_resnet_layout(name, n):
    m = model(name)
    mods = dict(m.named_modules())
    assert mods["conv1"].in_channels == 3 and mods["conv1"].out_channels == 16
    assert isinstance(mods["bn1"], nn.BatchNorm2d)
    assert isinstance(mods["avgpool"], nn.AdaptiveAvgPool2d)
    assert (mods["fc"].in_features, mods["fc"].out_features) == (64, 10)
    for li, planes in ((1, 16), (2, 32), (3, 64)):
        layer = mods[f"layer{li}"]
        assert isinstance(layer, nn.Sequential) and len(layer) == n
        for b in range(n):
            p = f"layer{li}.{b}."
            for c in ("conv1", "conv2"):
                conv = mods[p + c]
                assert conv.out_channels == planes and conv.kernel_size == (3, 3)
                assert conv.bias is None
            assert isinstance(mods[p + "bn1"], nn.BatchNorm2d)
            assert isinstance(mods[p + "bn2"], nn.BatchNorm2d)
            stride = 2 if (b == 0 and li > 1) else 1
            assert mods[p + "conv1"].stride == (stride, stride)
    # No projection convs at all: 1 stem + 2 per block, all 3x3.
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 3 * n and all(c.kernel_size == (3, 3) for c in convs)


def test_resnet_cifar_depth_validation():
    assert sum(isinstance(x, nn.Conv2d) for x in resnet_cifar(20).modules()) == 19
    for bad in (0, 8 - 1, 57, 111):
        with pytest.raises(ValueError):
            resnet_cifar(bad)


@pytest.mark.parametrize("layer,c_in,planes", [("layer2", 16, 32), ("layer3", 32, 64)])
def test_option_a_shortcut(layer, c_in, planes):
    m = model("resnet56_cifar")
    block = getattr(m, layer)[0]
    sc = block.shortcut
    assert isinstance(sc, OptionAShortcut)
    assert list(sc.parameters()) == [] and list(sc.buffers()) == []
    pad = planes // 4
    assert type(sc.pad) is int and sc.pad == pad and type(sc.stride) is int
    # Identity blocks have no shortcut module at all.
    assert all(b.shortcut is None for b in list(getattr(m, layer))[1:])
    assert m.layer1[0].shortcut is None

    torch.manual_seed(3)
    x = torch.randn(1, c_in, 32, 32)
    s = sc(x)
    assert s.shape == (1, planes, 16, 16)
    assert torch.count_nonzero(s[:, :pad]) == 0          # channels 0 .. pad-1
    assert torch.count_nonzero(s[:, pad + c_in:]) == 0
    assert torch.equal(s[:, pad:pad + c_in], x[:, :, ::2, ::2])

    with torch.no_grad():
        out = block(x)
        main = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    torch.testing.assert_close(out, F.relu(main + s), rtol=0, atol=0)

    # Traced: the pad amount is a literal constant in the graph, no module call for it.
    gm = torch.fx.symbolic_trace(block)
    pads = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is F.pad]
    assert len(pads) == 1 and tuple(pads[0].args[1]) == (0, 0, 0, 0, pad, pad)
    assert {n.target for n in gm.graph.nodes if n.op == "call_module"} == {
        "conv1", "bn1", "conv2", "bn2"}


# --------------------------------------------------------------------------- ImageNet ResNet

def torchvision_keys(bottleneck: bool, layers) -> list[str]:
    """The state_dict keys of torchvision's resnet, derived from its documented layout."""
    def bn(p):
        return [f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var",
                f"{p}.num_batches_tracked"]
    keys = ["conv1.weight", *bn("bn1")]
    for li, n in enumerate(layers, 1):
        for b in range(n):
            p = f"layer{li}.{b}"
            for c in ((1, 2, 3) if bottleneck else (1, 2)):
                keys += [f"{p}.conv{c}.weight", *bn(f"{p}.bn{c}")]
            if b == 0 and (bottleneck or li > 1):
                keys += [f"{p}.downsample.0.weight", *bn(f"{p}.downsample.1")]
    return keys + ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("name,bottleneck,layers,n_keys", [
    ("resnet18", False, (2, 2, 2, 2), 122),
    ("resnet34", False, (3, 4, 6, 3), 218),
    ("resnet50", True, (3, 4, 6, 3), 320),
])
def test_imagenet_state_dict_layout(name, bottleneck, layers, n_keys):
    m = model(name)
    sd = m.state_dict()
    expected = torchvision_keys(bottleneck, layers)
    assert len(sd) == n_keys == len(expected)
    assert list(sd) == expected
    # A checkpoint with exactly these keys loads strictly.
    clone = zoo.build(name, seed=5)
    clone.load_state_dict(sd, strict=True)
    assert_same_state(clone.state_dict(), sd)

    mods = dict(m.named_modules())
    assert mods["conv1"].kernel_size == (7, 7) and mods["conv1"].stride == (2, 2)
    assert mods["conv1"].padding == (3, 3) and mods["conv1"].bias is None
    assert isinstance(mods["relu"], nn.ReLU)
    mp = mods["maxpool"]
    assert isinstance(mp, nn.MaxPool2d) and (mp.kernel_size, mp.stride, mp.padding) == (3, 2, 1)
    assert isinstance(mods["avgpool"], nn.AdaptiveAvgPool2d) and mods["avgpool"].output_size == (1, 1)
    assert mods["fc"].out_features == 1000
    if bottleneck:
        assert isinstance(mods["layer1.0"], Bottleneck)
        assert mods["layer2.0.conv2"].stride == (2, 2)            # v1.5
        assert mods["layer2.0.conv1"].stride == (1, 1)
        assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
        assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
        assert mods["fc"].in_features == 2048
    else:
        assert isinstance(mods["layer1.0"], BasicBlock)
        assert mods["layer2.0.conv1"].stride == (2, 2)
        assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
        assert mods["layer2.0.downsample.0"].stride == (2, 2)
        assert mods["fc"].in_features == 512
    for p, mod in mods.items():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0), p


def test_zero_init_residual():
    m = zoo.build("resnet18", zero_init_residual=True)
    assert all(torch.all(b.bn2.weight == 0) for b in m.modules() if isinstance(b, BasicBlock))
    m = zoo.build("resnet50", zero_init_residual=True)
    assert all(torch.all(b.bn3.weight == 0) for b in m.modules() if isinstance(b, Bottleneck))
    assert torch.all(m.layer1[0].bn2.weight == 1)
