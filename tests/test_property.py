"""Property: random small conv nets with random channel removals pass masked equivalence,
and the predicted parameter count is the real one."""
from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import analyzed, counted_macs, params, prune_with, random_pick
from tests.nets import BLOCKS, RandomNet

nets = st.fixed_dictionaries({
    "kinds": st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=5),
    "widths": st.lists(st.integers(1, 5), min_size=5, max_size=5),
    "stem": st.integers(2, 5),
    "flatten": st.booleans(),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets)
def test_random_nets_survive_random_removals(spec):
    torch.manual_seed(spec["seed"])
    net = RandomNet(spec["kinds"], spec["widths"], stem=spec["stem"], flatten=spec["flatten"])
    x = torch.randn(2, 3, 8, 8)
    ctx = analyzed(net, x)
    ctx = prune_with(ctx, random_pick(ctx, spec["seed"]))
    assert ctx.verify["passed"]
    assert params(ctx.pruned) == ctx.report.after["params"]
    with torch.no_grad():
        assert ctx.pruned(x).shape == net(x).shape
    # FLOPs are what runs: torch's counter agrees before and after (within 1%)
    assert abs(ctx.report.before["flops"] - counted_macs(net, x)) <= 0.01 * counted_macs(net, x)
    assert abs(ctx.report.after["flops"] - counted_macs(ctx.pruned, x)) \
        <= 0.01 * counted_macs(ctx.pruned, x)
