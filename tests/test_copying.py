"""PruneQL's copies (pruneql.graph.copying): what the caller handed in is never reachable
through them, except the tensors they share on purpose."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pruneql import zoo
from pruneql.graph.copying import own_modules, share_copy


class Configured(nn.Module):
    """Attributes of every kind a user's module may hold (a tensor that is no buffer, as
    Ultralytics' ``stride``), a hook, a tied weight, a module used twice, and a child whose
    class copies itself its own way."""

    class Custom(nn.Linear):
        def __deepcopy__(self, memo):
            new = nn.Linear.__new__(type(self))
            new.__dict__.update(copy.deepcopy(self.__dict__, memo))
            new.copied_by_itself = True
            return new

    def __init__(self):
        super().__init__()
        self.config = {"widths": [4, 4], "name": "net"}
        self.names = ["a", "b"]
        self.a = nn.Linear(4, 4)
        self.b = self.a                                     # one module, two names
        self.c = nn.Linear(4, 4)
        self.c.weight = self.a.weight                       # tied
        self.custom = Configured.Custom(4, 2)
        self.register_buffer("scale", torch.ones(4), persistent=False)
        self.calls = []
        self.stride = torch.tensor([8.0, 16.0])             # a tensor that is no buffer
        self.a.register_forward_hook(lambda m, i, o: self.calls.append(1))

    def forward(self, x):
        return self.custom(self.c(self.b(self.a(x))) * self.scale)


def test_share_copy_is_a_deep_copy_except_the_tensors():
    model = Configured()
    mine = share_copy(model)
    theirs = dict(model.named_modules(remove_duplicate=False))
    for name, module in mine.named_modules(remove_duplicate=False):
        assert type(module) is type(theirs[name]) and module is not theirs[name]
        assert vars(module).keys() - {"copied_by_itself"} == vars(theirs[name]).keys()
    assert mine.a is mine.b and mine.c.weight is mine.a.weight is model.a.weight
    assert mine.scale is model.scale and "scale" in mine._non_persistent_buffers_set
    assert mine._non_persistent_buffers_set is not model._non_persistent_buffers_set
    assert mine.custom.copied_by_itself and mine.custom.weight is model.custom.weight
    assert torch.equal(mine.stride, model.stride) and mine.stride is not model.stride
    mine.config["widths"].append(8)
    mine.names.append("c")
    mine.a.out_features = 3
    mine.a.register_forward_pre_hook(lambda m, args: None)
    assert model.config["widths"] == [4, 4] and model.names == ["a", "b"]
    assert model.a.out_features == 4 and not model.a._forward_pre_hooks
    assert len(mine.a._forward_hooks) == 1           # the caller's hook comes along
    x = torch.randn(2, 4)
    with torch.no_grad():
        assert torch.equal(mine(x), model(x))


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "llama_tiny"])
def test_share_copy_matches_copy_deepcopy_on_zoo_models(name):
    model = zoo.build(name).eval()
    mine = share_copy(model)
    memo = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    reference = copy.deepcopy(model, memo)
    for (n1, m1), (n2, m2) in zip(mine.named_modules(), reference.named_modules()):
        assert n1 == n2 and type(m1) is type(m2) and vars(m1).keys() == vars(m2).keys()
    assert all(a is b for a, b in zip(mine.parameters(), model.parameters()))
    x = zoo.example_input(name, batch=1)
    with torch.no_grad():
        assert torch.equal(mine(x), model(x))


def test_own_modules_gives_new_shells_around_shared_tensors():
    shared = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Sequential(nn.BatchNorm2d(2)))
    holder = nn.Sequential(*shared)           # the same module objects
    own_modules(holder)
    assert holder[0] is not shared[0] and holder[1][0] is not shared[1][0]
    assert holder[0].weight is shared[0].weight
    holder[1][0].register_forward_hook(lambda m, i, o: o * 0)
    holder[0].weight = nn.Parameter(torch.zeros(2, 1, 1, 1))
    assert not shared[1][0]._forward_hooks and shared[0].weight.abs().sum() > 0
