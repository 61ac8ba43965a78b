"""Shapes without arithmetic (pruneql.graph.shapes): stand-ins for conv, linear and
BatchNorm give every node the shape a real forward pass gives, and anything they cannot
account for falls back to the real forward."""
from __future__ import annotations

import pytest
import torch
from torch import fx, nn

from pruneql import zoo
from pruneql.graph import shapes
from pruneql.graph.trace import propagate_shapes, symbolic_trace


def _recorded(gm) -> dict:
    return {n.name: (n.meta["pruneql.shape"], n.meta["pruneql.dtype"])
            for n in gm.graph.nodes}


def _both(model, x) -> tuple:
    """(shapes recorded by a real forward, shapes recorded by stand-ins, whether the
    stand-ins applied)"""
    gm = symbolic_trace(model.eval())
    outputs = propagate_shapes(gm, (x,), fake_ok=False)
    assert outputs is not None
    real = _recorded(gm)
    applied = shapes.values_irrelevant(gm)
    assert propagate_shapes(gm, (x,), fake_ok=True) is None
    return real, _recorded(gm), applied


@pytest.mark.parametrize("name", [n for n in zoo.names()
                                  if n not in ("bert_tiny", "llama_tiny", "vit_tiny")])
def test_stand_ins_record_the_shapes_of_a_real_forward(name):
    x = zoo.example_input(name, batch=2)
    real, stood_in, applied = _both(zoo.build(name), x)
    assert stood_in == real
    if name in ("resnet50", "densenet121", "vgg16_cifar", "mobilenet_v2"):
        assert applied          # the models the benchmark compares take the cheap path


class Odd(nn.Module):
    """A conv with ``padding='same'`` and dilation, a strided Conv1d, a Linear on a 3-D
    input, BatchNorm1d on 2-D and 3-D inputs, a conv that gets no batch dimension."""

    def __init__(self):
        super().__init__()
        self.same = nn.Conv2d(3, 5, 3, padding="same", dilation=2)
        self.valid = nn.Conv2d(5, 4, (3, 2), stride=(2, 3), padding="valid")
        self.c1 = nn.Conv1d(4, 6, 5, stride=2, padding=1, padding_mode="circular")
        self.bn3, self.lin, self.bn2 = nn.BatchNorm1d(6), nn.Linear(6, 7), nn.BatchNorm1d(7)
        self.unbatched = nn.Conv1d(6, 2, 1)

    def forward(self, x):
        y = self.valid(self.same(x))
        y = self.bn3(self.c1(y.flatten(2)))
        z = self.bn2(self.lin(y.transpose(1, 2)).mean(1))
        return z, self.unbatched(y[0])


def test_stand_ins_follow_padding_stride_dilation_and_ranks():
    real, stood_in, applied = _both(Odd(), torch.randn(2, 3, 11, 13))
    assert applied and stood_in == real


class Masked(nn.Module):
    """An output whose shape depends on values: zeros in place of the conv's output would
    select nothing."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return y[y > 0]


class Hooked(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 4, 1), nn.Conv2d(2, 1, 1)

    def forward(self, x):
        return self.head(self.conv(x))


def test_values_that_decide_a_shape_are_computed():
    gm = symbolic_trace(Masked().eval())
    assert not shapes.values_irrelevant(gm)
    x = torch.randn(1, 3, 4, 4)
    propagate_shapes(gm, (x,), fake_ok=True)
    out = next(n for n in gm.graph.nodes if n.op == "call_function" and n.name == "getitem")
    with torch.no_grad():
        assert out.meta["pruneql.shape"] == tuple(gm(x).shape)
    assert out.meta["pruneql.shape"][0] > 0          # a real forward: some values are > 0


class Checked(nn.Module):
    """timm-style checks: one of a size (stand-ins pass it), one of values (zeros in
    place of the conv's output fail it, so shapes come from a real forward)."""

    def __init__(self, on_values: bool):
        super().__init__()
        self.conv, self.on_values = nn.Conv2d(3, 4, 1), on_values

    def forward(self, x):
        y = self.conv(x)
        torch._assert(y.shape[1] == 4, "four channels")
        if self.on_values:
            torch._assert((y != 0).sum() > 0, "some signal")
        return y.flatten(1)


def test_checks_a_model_makes_pass_or_send_shapes_to_a_real_forward():
    real, stood_in, applied = _both(Checked(on_values=False), torch.randn(2, 3, 5, 5))
    assert applied and stood_in == real
    gm = symbolic_trace(Checked(on_values=True).eval())
    x = torch.randn(2, 3, 5, 5)
    assert shapes.values_irrelevant(gm)
    outputs = propagate_shapes(gm, (x,), fake_ok=True)     # the stand-ins failed the check
    assert outputs is not None and outputs.shape == (2, 100)
    assert _recorded(gm)["flatten"] == ((2, 100), torch.float32)


def test_a_layer_the_stand_in_cannot_account_for_runs_for_real():
    model = Hooked().eval()
    model.conv.register_forward_hook(lambda m, args, out: out[:, :2])   # 4 -> 2 channels
    gm = fx.GraphModule(model, fx.Tracer().trace(model))
    with pytest.raises(shapes.NoStandIn):
        shapes.stand_in(gm.conv, (torch.randn(1, 3, 4, 4),), {})
    propagate_shapes(gm, (torch.randn(1, 3, 4, 4),), fake_ok=True)
    assert [n.meta["pruneql.shape"] for n in gm.graph.nodes][1:3] == [(1, 2, 4, 4), (1, 1, 4, 4)]
