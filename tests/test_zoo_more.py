"""Zoo models beyond the Li et al. 2017 set: exact parameter counts, fx-traceability (traced ==
eager, bit for bit), output shapes, deterministic builds and the layout details the channel
analysis relies on (grouped/depthwise convs, SE gates, cat, chunk/shuffle, permute + LayerNorm,
layer-scale parameters, GroupNorm, PReLU, ConvTranspose2d).
"""
from __future__ import annotations

import operator

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from pruneql import zoo
from pruneql.zoo.regnet import regnet_stages

# name -> (exact parameter count, classes, input shape registered, input shape for fast checks)
MODELS = {
    "resnext50_32x4d": (25_028_904, 1000, (3, 224, 224), (3, 64, 64)),
    "mobilenet_v2": (3_504_872, 1000, (3, 224, 224), (3, 64, 64)),
    "mobilenet_v3_small": (2_542_856, 1000, (3, 224, 224), (3, 64, 64)),
    "efficientnet_b0": (5_288_548, 1000, (3, 224, 224), (3, 64, 64)),
    "densenet121": (7_978_856, 1000, (3, 224, 224), (3, 64, 64)),
    "inception_cifar": (1_256_722, 10, (3, 32, 32), (3, 32, 32)),
    "shufflenet_v2_x1_0": (2_278_604, 1000, (3, 224, 224), (3, 64, 64)),
    "convnext_tiny": (28_589_128, 1000, (3, 224, 224), (3, 64, 64)),
    "regnety_400mf": (4_344_144, 1000, (3, 224, 224), (3, 64, 64)),
    "unet": (481_698, 2, (3, 64, 64), (3, 64, 64)),
}
NAMES = sorted(MODELS)


def out_shape(name: str, shape: tuple) -> tuple:
    classes = MODELS[name][1]
    return (1, classes, *shape[1:]) if name == "unet" else (1, classes)


_CACHE: dict[str, nn.Module] = {}


def model(name: str) -> nn.Module:
    """zoo.build(name, seed=0), built once per test session (tests must not mutate it)."""
    if name not in _CACHE:
        _CACHE[name] = zoo.build(name, seed=0)
    return _CACHE[name]


_GM: dict[str, torch.fx.GraphModule] = {}


def traced(name: str) -> torch.fx.GraphModule:
    if name not in _GM:
        _GM[name] = torch.fx.symbolic_trace(model(name))
    return _GM[name]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def module_calls(gm: torch.fx.GraphModule) -> list[str]:
    return [n.target for n in gm.graph.nodes if n.op == "call_module"]


# --------------------------------------------------------------------------- registry

def test_registered():
    assert set(NAMES) <= set(zoo.names())
    for name in NAMES:
        e = zoo.entry(name)
        assert e.name == name and callable(e.factory)
        assert e.input_shape == MODELS[name][2]
        assert e.description and e.paper


# --------------------------------------------------------------------------- common checks

@pytest.mark.parametrize("name", NAMES)
def test_param_count(name):
    assert n_params(model(name)) == MODELS[name][0]


@pytest.mark.parametrize("name", NAMES)
def test_fx_trace_matches_eager(name):
    m = model(name)
    gm = traced(name)
    shape = MODELS[name][3]
    torch.manual_seed(2)
    x = torch.randn(1, *shape)
    with torch.no_grad():
        ref = m(x)
        got = gm(x)
    assert got.shape == out_shape(name, shape)
    assert torch.isfinite(ref).all()
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    # Every parameterised layer of the model is called as a module in the graph.
    layers = {n for n, mod in m.named_modules()
              if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d,
                                  nn.GroupNorm, nn.PReLU))
              or type(mod) is nn.LayerNorm}
    assert layers <= set(module_calls(gm))
    # No parameter is left unused.
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for mod_name in set(module_calls(gm)):
        used |= {f"{mod_name}.{p}" for p, _ in gm.get_submodule(mod_name).named_parameters()}
    assert {p for p, _ in m.named_parameters()} <= used


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_at_registered_input(name):
    shape = zoo.entry(name).input_shape
    with torch.no_grad():
        out = model(name)(torch.zeros(1, *shape))
    assert out.shape == out_shape(name, shape)


@pytest.mark.parametrize("name", NAMES)
def test_build_deterministic_and_rng_untouched(name):
    torch.manual_seed(12345)
    before = torch.get_rng_state()
    again = zoo.build(name)
    assert torch.equal(torch.get_rng_state(), before)
    a, b = model(name).state_dict(), again.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not any(mod.training for mod in again.modules())
    other = zoo.build(name, seed=1)
    assert any(not torch.equal(p, q) for p, q in zip(model(name).parameters(),
                                                     other.parameters()))


@pytest.mark.parametrize("name", ["mobilenet_v2", "shufflenet_v2_x1_0", "inception_cifar",
                                  "unet", "convnext_tiny"])
def test_build_kwargs_num_classes(name):
    m = zoo.build(name, num_classes=7)
    shape = MODELS[name][3]
    with torch.no_grad():
        out = m(torch.zeros(1, *shape))
    assert out.shape[:2] == (1, 7)


# --------------------------------------------------------------------------- layouts

def test_resnext_grouped_convs():
    m = model("resnext50_32x4d")
    sd = m.state_dict()
    assert len(sd) == 320                     # same keys as torchvision's resnet50
    assert sd["layer1.0.conv1.weight"].shape == (128, 64, 1, 1)
    assert sd["layer1.0.conv2.weight"].shape == (128, 4, 3, 3)
    assert sd["layer4.2.conv2.weight"].shape == (1024, 32, 3, 3)
    assert sd["layer4.2.conv3.weight"].shape == (2048, 1024, 1, 1)
    assert all(b.conv2.groups == 32 for b in m.modules() if hasattr(b, "conv3"))
    assert m.layer2[0].conv2.stride == (2, 2)


def test_mobilenet_v2_layout():
    m = model("mobilenet_v2")
    sd = m.state_dict()
    assert len(m.features) == 19
    assert sd["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert sd["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)      # depthwise, t = 1
    assert sd["features.1.conv.1.weight"].shape == (16, 32, 1, 1)
    assert sd["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)    # expand x6
    assert sd["features.2.conv.1.0.weight"].shape == (96, 1, 3, 3)
    assert sd["features.2.conv.2.weight"].shape == (24, 96, 1, 1)
    assert sd["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert sd["classifier.1.weight"].shape == (1000, 1280)
    assert isinstance(m.classifier[0], nn.Dropout)
    assert sum(isinstance(x, nn.ReLU6) for x in m.modules()) == 35
    residual = [i for i, f in enumerate(m.features) if getattr(f, "use_res_connect", False)]
    assert residual == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]
    adds = [n for n in traced("mobilenet_v2").graph.nodes if n.target is operator.add]
    assert len(adds) == 10


def _se_gates(gm: torch.fx.GraphModule, gate: type) -> int:
    """``mul`` nodes one of whose operands is the output of a ``gate`` module."""
    count = 0
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target is operator.mul:
            for a in n.args:
                if (isinstance(a, torch.fx.Node) and a.op == "call_module"
                        and isinstance(gm.get_submodule(a.target), gate)):
                    count += 1
    return count


def test_mobilenet_v3_small_layout():
    m = model("mobilenet_v3_small")
    sd = m.state_dict()
    assert sd["features.1.block.1.fc1.weight"].shape == (8, 16, 1, 1)
    assert sd["features.1.block.1.fc2.weight"].shape == (16, 8, 1, 1)
    assert sd["features.4.block.2.fc1.weight"].shape == (24, 96, 1, 1)
    assert sd["features.12.0.weight"].shape == (576, 96, 1, 1)
    assert sd["classifier.0.weight"].shape == (1024, 576)
    assert sd["classifier.3.weight"].shape == (1000, 1024)
    bn = m.features[0][1]
    assert bn.eps == 0.001 and bn.momentum == 0.01
    assert _se_gates(traced("mobilenet_v3_small"), nn.Hardsigmoid) == 9
    assert any(isinstance(x, nn.Hardswish) for x in m.modules())


def test_efficientnet_b0_layout():
    m = model("efficientnet_b0")
    sd = m.state_dict()
    assert [len(s) for s in list(m.features)[1:8]] == [1, 2, 2, 3, 3, 4, 1]
    assert sd["features.1.0.block.0.0.weight"].shape == (32, 1, 3, 3)
    assert sd["features.1.0.block.1.fc1.weight"].shape == (8, 32, 1, 1)
    assert sd["features.6.1.block.1.0.weight"].shape == (1152, 1, 5, 5)
    assert sd["features.6.1.block.2.fc1.weight"].shape == (48, 1152, 1, 1)
    assert sd["features.8.0.weight"].shape == (1280, 320, 1, 1)
    assert sd["classifier.1.weight"].shape == (1000, 1280)
    assert _se_gates(traced("efficientnet_b0"), nn.Sigmoid) == 16
    assert sum(isinstance(x, nn.SiLU) for x in m.modules()) == 2 + 16 * 2 - 1 + 16


def test_densenet121_layout():
    m = model("densenet121")
    sd = m.state_dict()
    blocks = [m.features.get_submodule(f"denseblock{i}") for i in range(1, 5)]
    assert [len(b) for b in blocks] == [6, 12, 24, 16]
    assert sd["features.denseblock1.denselayer1.conv1.weight"].shape == (128, 64, 1, 1)
    assert sd["features.denseblock1.denselayer6.conv2.weight"].shape == (32, 128, 3, 3)
    assert sd["features.transition1.conv.weight"].shape == (128, 256, 1, 1)
    assert sd["features.denseblock4.denselayer16.norm1.weight"].shape == (992,)
    assert sd["features.norm5.weight"].shape == (1024,)
    assert sd["classifier.weight"].shape == (1000, 1024)
    cats = [n for n in traced("densenet121").graph.nodes if n.target is torch.cat]
    assert len(cats) == 58 + 4          # one per dense layer, one per block


def test_inception_cifar_layout():
    m = model("inception_cifar")
    gm = traced("inception_cifar")
    widths = {"inception3a": 128, "inception3b": 240, "inception4a": 256, "inception4b": 256,
              "inception4c": 416, "inception5a": 416, "inception5b": 512}
    for name, w in widths.items():
        assert getattr(m, name).out_channels == w
    assert m.fc.in_features == 512
    cats = [n for n in gm.graph.nodes if n.target is torch.cat]
    assert len(cats) == 7 and all(len(n.args[0]) == 4 for n in cats)
    b3 = m.inception3a.branch3
    assert [c.conv.kernel_size for c in b3] == [(1, 1), (3, 3), (3, 3)]
    assert isinstance(m.inception3a.branch4[0], nn.MaxPool2d)


def test_shufflenet_v2_layout():
    m = model("shufflenet_v2_x1_0")
    gm = traced("shufflenet_v2_x1_0")
    sd = m.state_dict()
    assert [len(m.stage2), len(m.stage3), len(m.stage4)] == [4, 8, 4]
    assert sd["stage2.0.branch1.0.weight"].shape == (24, 1, 3, 3)
    assert sd["stage2.0.branch1.2.weight"].shape == (58, 24, 1, 1)
    assert sd["stage2.1.branch2.0.weight"].shape == (58, 58, 1, 1)
    assert sd["conv5.0.weight"].shape == (1024, 464, 1, 1)
    assert len(m.stage2[1].branch1) == 0
    methods = [n.target for n in gm.graph.nodes if n.op == "call_method"]
    assert methods.count("chunk") == 13
    assert methods.count("view") == 2 * 16
    transposes = [n for n in gm.graph.nodes if n.target is torch.transpose]
    assert len(transposes) == 16
    # The shuffle interleaves: output channel 2k is input channel k, 2k + 1 is C/2 + k.
    from pruneql.zoo.shufflenet import channel_shuffle
    x = torch.arange(8.0).view(1, 8, 1, 1).expand(2, 8, 3, 3)
    assert channel_shuffle(x, 2, 8)[0, :, 0, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_convnext_tiny_layout():
    m = model("convnext_tiny")
    gm = traced("convnext_tiny")
    sd = m.state_dict()
    assert [len(s) for s in m.stages] == [3, 3, 9, 3]
    assert sd["downsample_layers.0.0.weight"].shape == (96, 3, 4, 4)
    assert sd["downsample_layers.0.1.weight"].shape == (96,)
    assert sd["downsample_layers.1.1.weight"].shape == (192, 96, 2, 2)
    assert sd["stages.0.0.dwconv.weight"].shape == (96, 1, 7, 7)
    assert sd["stages.2.8.pwconv1.weight"].shape == (1536, 384)
    assert sd["stages.3.2.gamma"].shape == (768,)
    assert torch.all(sd["stages.3.2.gamma"] == 1e-6)
    assert sd["norm.weight"].shape == (768,) and sd["head.weight"].shape == (1000, 768)
    gammas = [n for n in gm.graph.nodes if n.op == "get_attr" and n.target.endswith("gamma")]
    assert len(gammas) == 18
    assert all(any(u.target is operator.mul for u in g.users) for g in gammas)
    permutes = [n for n in gm.graph.nodes if n.op == "call_method" and n.target == "permute"]
    assert len(permutes) == 2 * 18 + 2 * 4       # blocks + LayerNorm2d
    assert sum(n.target is F.layer_norm for n in gm.graph.nodes) == 4
    # LayerNorm2d normalises over channels exactly like LayerNorm on the channels-last view.
    ln = m.downsample_layers[1][0]
    x = torch.randn(2, 96, 5, 5)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (96,), ln.weight, ln.bias, 1e-6)
    torch.testing.assert_close(ln(x), ref.permute(0, 3, 1, 2))


def test_regnety_400mf_layout():
    assert regnet_stages(16, 48, 27.89, 2.09, 8) == [(48, 1, 8), (104, 3, 8), (208, 6, 8),
                                                   (440, 6, 8)]
    m = model("regnety_400mf")
    sd = m.state_dict()
    assert [len(s) for s in m.trunk_output] == [1, 3, 6, 6]
    assert sd["stem.0.weight"].shape == (32, 3, 3, 3)
    assert sd["trunk_output.block1.block1-0.proj.0.weight"].shape == (48, 32, 1, 1)
    assert sd["trunk_output.block1.block1-0.f.b.0.weight"].shape == (48, 8, 3, 3)
    assert sd["trunk_output.block1.block1-0.f.se.fc1.weight"].shape == (8, 48, 1, 1)
    assert sd["trunk_output.block2.block2-1.f.se.fc1.weight"].shape == (26, 104, 1, 1)
    assert sd["trunk_output.block4.block4-5.f.c.0.weight"].shape == (440, 440, 1, 1)
    assert "trunk_output.block2.block2-1.proj.0.weight" not in sd
    assert sd["fc.weight"].shape == (1000, 440)
    assert m.trunk_output.block4.get_submodule("block4-0").f.b[0].groups == 55
    assert _se_gates(traced("regnety_400mf"), nn.Sigmoid) == 16


def test_unet_layout():
    m = model("unet")
    gm = traced("unet")
    mods = dict(m.named_modules())
    assert isinstance(mods["enc1.norm1"], nn.BatchNorm2d)
    gns = [k for k, v in mods.items() if isinstance(v, nn.GroupNorm)]
    prelus = [v for v in mods.values() if isinstance(v, nn.PReLU)]
    assert len(gns) == 8 and len(prelus) == 8
    assert all(p.num_parameters == p.weight.numel() > 1 for p in prelus)
    assert mods["bottleneck.act1"].weight.shape == (128,)
    assert isinstance(mods["up3"], nn.ConvTranspose2d) and isinstance(mods["up2"], nn.ConvTranspose2d)
    assert mods["head"].out_channels == 2
    cats = [n for n in gm.graph.nodes if n.target is torch.cat]
    assert len(cats) == 3
    assert sum(n.target is F.interpolate for n in gm.graph.nodes) == 1
    with torch.no_grad():
        out = zoo.build("unet", in_channels=1)(torch.zeros(1, 1, 32, 48))
    assert out.shape == (1, 2, 32, 48)
