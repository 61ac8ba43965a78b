"""Every zoo model: uniform `prune ** by l1 keep 0.5`, verified, emitted, re-measured."""
from __future__ import annotations

import pytest
import torch

import pruneql
from pruneql import zoo
from tests.helpers import counted_macs

SMALL = (3, 64, 64)     # ImageNet models pool adaptively: a small input keeps this fast
# transformers have their own coverage (tests/test_transformers.py)
CNNS = [n for n in zoo.names() if n not in ("vit_tiny", "bert_tiny", "llama_tiny")]


def _shape(name: str) -> tuple:
    shape = zoo.entry(name).input_shape
    return SMALL if shape == (3, 224, 224) else shape


@pytest.mark.parametrize("name", CNNS)
def test_uniform_half_width(name, tmp_path):
    x = torch.randn(2, *_shape(name), generator=torch.Generator().manual_seed(0))
    result = pruneql.compile(f"model {name}; prune ** by l1 keep 0.5", example_inputs=x)
    report = result.report.to_dict()
    assert report["verify"]["passed"]
    assert report["after"]["flops"] < report["before"]["flops"]
    prunable = [g for g in report["groups"] if g["prunable"]]
    assert prunable and all(g["channels"]["after"] < g["channels"]["before"] for g in prunable)
    # the emitted model measures what the plan said, loads without PruneQL and runs
    remeasured = pruneql.plan("", result.module, example_inputs=x)
    assert remeasured.before == report["after"]
    path = result.save(tmp_path / "m.pt")
    loaded = torch.jit.load(path)
    with torch.no_grad():
        expected = result.module(x)
        got = loaded(x)
    assert got.shape == expected.shape == zoo.build(name)(x).shape
    assert torch.allclose(got, expected, atol=1e-5 * float(expected.abs().max()))
    # FLOPs are what runs: torch's own counter (2 FLOPs per multiply-add) agrees
    assert report["before"]["flops"] == pytest.approx(counted_macs(zoo.build(name), x), rel=0.01)
    assert report["after"]["flops"] == pytest.approx(counted_macs(result.module, x), rel=0.01)


@pytest.mark.parametrize("name", ["resnet56_cifar", "mobilenet_v2"])
def test_same_recipe_twice_gives_identical_weights(name, tmp_path):
    recipe = f"model {name}; input {'x'.join(map(str, _shape(name)))}; prune ** by l1 keep 0.6"
    first, second = pruneql.compile(recipe), pruneql.compile(recipe)
    a, b = first.module.state_dict(), second.module.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    # TorchScript archives carry a random serialisation id; the weights must match to the byte
    saved_a = torch.jit.load(first.save(tmp_path / "a.pt")).state_dict()
    saved_b = torch.jit.load(second.save(tmp_path / "b.pt")).state_dict()
    assert all(saved_a[k].numpy().tobytes() == saved_b[k].numpy().tobytes() for k in saved_a)


class Rolled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 3)
        self.c = torch.nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.c(self.b(torch.roll(self.a(x), shifts=1, dims=1)))


def test_unknown_channel_op_is_frozen_and_named_in_the_plan():
    x = torch.randn(1, 3, 12, 12)
    report = pruneql.plan("prune ** by l1 keep 0.5", Rolled(), example_inputs=x).to_dict()
    rolled = next(g for g in report["groups"] if g["producers"] == ["a"])
    assert rolled["frozen"] == "op torch.roll is not modelled" and not rolled["selected"]
    assert rolled["channels"] == {"before": 8, "after": 8}
    result = pruneql.compile("prune ** by l1 keep 0.5", Rolled(), example_inputs=x)
    assert result.report.verify["passed"]
    with pytest.raises(pruneql.PruneQLError, match="torch.roll"):
        pruneql.plan("prune a by l1 keep 0.5", Rolled(), example_inputs=x)
