"""Data-driven criteria (taylor, activation, oracle, ensemble) and spearman, on tiny nets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pruneql.criteria import DATA_CRITERIA, data_scores, spearman
from pruneql.criteria.ensemble import fit_linear_ensemble, sample_masks
from pruneql.criteria.ranks import ranks as _ranks
from pruneql.criteria.taylor import flops_per_channel
from pruneql.graph.gates import consumers, gated
from tests.helpers import analyzed, group_with, useless_and_essential

# the fits below use a handful of masks on purpose: their warnings are expected
pytestmark = pytest.mark.filterwarnings("ignore::pruneql.criteria.EnsembleFitWarning")


class Tiny(nn.Module):
    """conv1 and conv2 write one residual stream (read by conv2 and conv3: two consumers);
    conv3's maps are flattened into fc (each map read as 16 features)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.conv3 = nn.Conv2d(6, 5, 3, padding=1, stride=2)
        self.fc = nn.Linear(5 * 4 * 4, 7)
        self.out = nn.Linear(7, 4)

    def forward(self, x):
        a = F.relu(self.bn1(self.conv1(x)))
        b = a + F.relu(self.conv2(a))
        c = F.relu(self.conv3(b))
        return self.out(F.relu(self.fc(torch.flatten(c, 1))))


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    net = Tiny()
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-0.2, 0.2)
        net.bn1.running_var.uniform_(0.5, 1.5)
        net.bn1.weight.uniform_(0.5, 1.5)
        net.bn1.bias.uniform_(-0.1, 0.3)
    ctx = analyzed(net, torch.randn(2, 3, 8, 8))
    return ctx.gm, ctx.analysis


def _batches(n_batches=2, size=6, seed=1):
    """Random inputs labelled by a random linear 'teacher'."""
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(3 * 8 * 8, 4, generator=gen)
    out = []
    for _ in range(n_batches):
        x = torch.randn(size, 3, 8, 8, generator=gen)
        out.append((x, (x.flatten(1) @ teacher).argmax(1)))
    return out


def _groups(analysis):
    return [g for g in analysis.groups if g.prunable]


@pytest.fixture(scope="module")
def tiny():
    gm, analysis = _tiny()
    return gm, analysis, _groups(analysis), _batches()


def _loss(gm, analysis, removed, batches):
    total = count = 0
    with torch.no_grad(), gated(gm, analysis, removed):
        for x, y in batches:
            total += float(F.cross_entropy(gm(x), y, reduction="sum"))
            count += len(y)
    return total / count


def taylor_reference(gm, analysis, groups, batches, removed):
    """Molchanov's criterion by definition: one example at a time, Python loops over the
    consumers and channels. Returns (per-example |.| then mean, mean then |.|), unnormalised."""
    modules = dict(gm.named_modules())
    layers = consumers(analysis)
    per_abs = {g.id: np.zeros(g.size) for g in groups}
    signed = {g.id: np.zeros(g.size) for g in groups}
    count = 0
    gm.eval()
    with gated(gm, analysis, removed):
        for xb, yb in batches:
            for n in range(len(xb)):
                captured = {}

                def capture(name):
                    def hook(_m, args):
                        captured[name] = args[0].clone()     # a tensor per consumer
                        return (captured[name],) + args[1:]
                    return hook
                handles = [modules[l.name].register_forward_pre_hook(capture(l.name))
                           for l in layers]
                x = xb[n:n + 1].clone().requires_grad_(True)
                loss = F.cross_entropy(gm(x), yb[n:n + 1])
                names = list(captured)
                grads = dict(zip(names, torch.autograd.grad(loss, [captured[k] for k in names])))
                for h in handles:
                    h.remove()
                for g in groups:
                    for j, cls in enumerate(g.classes.tolist()):
                        t = 0.0
                        for l in layers:
                            feats = np.nonzero(analysis.classes[l.in_elems] == cls)[0].tolist()
                            if not feats:
                                continue
                            gz = (grads[l.name] * captured[l.name])[0].detach()
                            part = gz[..., feats] if l.kind == "linear" else gz[feats]
                            t += float(part.double().mean())
                        per_abs[g.id][j] += abs(t)
                        signed[g.id][j] += t
                count += 1
    return ({k: v / count for k, v in per_abs.items()},
            {k: np.abs(v / count) for k, v in signed.items()})


def _unit(v):
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------------------ shapes

def test_tiny_groups_cover_residual_and_flatten(tiny):
    gm, analysis, groups, _ = tiny
    assert [g.producers for g in groups] == [("conv1", "conv2"), ("conv3",), ("fc",)]
    readers = {l.name for l in consumers(analysis)
               if np.isin(analysis.classes[l.in_elems], groups[0].classes).any()}
    assert readers == {"conv2", "conv3"}                # two consumers of the stream
    fc = analysis.layers["fc"]
    assert np.isin(analysis.classes[fc.in_elems], groups[1].classes).sum() == 80


@pytest.mark.parametrize("name,args", [("taylor", {}), ("taylor", {"flops_reg": 0.1}),
                                       ("activation", {}), ("activation", {"stat": "std"}),
                                       ("oracle", {"batches": 1}),
                                       ("ensemble", {"samples": 12, "batches": 1})])
def test_scores_shape_and_keys(tiny, name, args):
    gm, analysis, groups, batches = tiny
    scores = data_scores(name, args, gm, analysis, groups, batches)
    assert set(scores) == {g.id for g in groups}
    for g in groups:
        assert scores[g.id].dtype == np.float64 and scores[g.id].shape == (g.size,)
        assert np.isfinite(scores[g.id]).all()
    assert set(DATA_CRITERIA) == {"taylor", "activation", "ensemble", "oracle"}


def test_unknown_criterion(tiny):
    gm, analysis, groups, batches = tiny
    with pytest.raises(ValueError, match="unknown"):
        data_scores("l1", {}, gm, analysis, groups, batches)


# ------------------------------------------------------------------------------ taylor

def test_taylor_matches_per_example_reference(tiny):
    gm, analysis, groups, batches = tiny
    removed = np.zeros(len(analysis.classes), bool)
    scores = data_scores("taylor", {}, gm, analysis, groups, batches)
    per_abs, abs_of_mean = taylor_reference(gm, analysis, groups, batches, removed)
    for g in groups:
        np.testing.assert_allclose(scores[g.id], _unit(per_abs[g.id]), rtol=1e-4, atol=1e-7)
        # taking |.| after averaging over examples is a different criterion
        assert np.abs(_unit(abs_of_mean[g.id]) - scores[g.id]).max() > 1e-2


def test_taylor_reference_with_removed_classes(tiny):
    gm, analysis, groups, batches = tiny
    removed = np.zeros(len(analysis.classes), bool)
    removed[groups[0].classes[[1, 4]]] = True
    removed[groups[1].classes[2]] = True
    scores = data_scores("taylor", {"batches": 1}, gm, analysis, groups, batches, removed)
    per_abs, _ = taylor_reference(gm, analysis, groups, batches[:1], removed)
    for g in groups:
        np.testing.assert_allclose(scores[g.id], _unit(per_abs[g.id]), rtol=1e-4, atol=1e-7)
    assert scores[groups[0].id][[1, 4]].tolist() == [0.0, 0.0]
    assert scores[groups[1].id][2] == 0.0


def test_taylor_per_example_abs_on_a_constructed_case():
    """One hidden unit whose gradient*activation is +1 on one example and -1 on the other:
    per-example |.| gives 1, |mean| would give 0."""
    net = nn.Sequential(nn.Linear(1, 2), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [0.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 1.0]))
        net[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        net[1].bias.zero_()
    ctx = analyzed(net, torch.zeros(2, 1))
    group = group_with(ctx, "0")
    x = torch.tensor([[1.0], [-1.0]])
    y = torch.tensor([0, 0])
    # z0 = x and dC/dz0 = dC/dlogit0 = softmax(logits)[0] - 1
    p = torch.softmax(torch.cat([x, torch.zeros(2, 1)], 1), 1)[:, 0]
    raw = (p - 1) * x[:, 0]                         # per-example g*z of unit 0
    assert raw[0] * raw[1] < 0                      # opposite signs
    scores = data_scores("taylor", {}, ctx.gm, ctx.analysis, [group], [(x, y)])[group.id]
    # unit 1 is constant 1 but its consumer weight is zero: g = 0, score 0
    expected = np.array([float(raw.abs().mean()), 0.0])
    np.testing.assert_allclose(scores, _unit(expected), atol=1e-6)
    assert abs(float(raw.mean())) < float(raw.abs().mean()) - 0.1


def test_taylor_l2_normalised_per_group(tiny):
    gm, analysis, groups, batches = tiny
    scores = data_scores("taylor", {"flops_reg": 0.0}, gm, analysis, groups, batches)
    for g in groups:
        assert np.linalg.norm(scores[g.id]) == pytest.approx(1.0)
        assert (scores[g.id] >= 0).all()


def test_taylor_flops_reg_penalises_costly_groups(tiny):
    gm, analysis, groups, batches = tiny
    plain = data_scores("taylor", {}, gm, analysis, groups, batches)
    reg = data_scores("taylor", {"flops_reg": 0.5}, gm, analysis, groups, batches)
    cost = flops_per_channel(analysis, groups)
    drop = {g.id: plain[g.id] - reg[g.id] for g in groups}
    for g in groups:                                 # one shift per group
        np.testing.assert_allclose(drop[g.id], drop[g.id][0], atol=1e-12)
    order = sorted(cost, key=cost.get)
    shifts = [drop[gid][0] for gid in order]
    assert shifts == sorted(shifts) and shifts[-1] == pytest.approx(0.5)
    assert shifts[0] < shifts[-1]
    # the residual group's channel costs conv1 + conv2 outputs and conv2 + conv3 inputs
    la = analysis.layers
    stream = groups[0]
    expected = (la["conv1"].attributes()["flops"] + 2 * la["conv2"].attributes()["flops"]
                + la["conv3"].attributes()["flops"]) / 6
    assert cost[stream.id] == pytest.approx(expected)


# ---------------------------------------------------------------------- activation

def test_activation_is_read_at_each_producers_activated_output(tiny):
    """The stream's units average relu(bn1(conv1)) and relu(conv2(.)) (two producers);
    conv3's and fc's are their ReLU outputs."""
    gm, analysis, groups, batches = tiny
    seen = {}
    modules = dict(gm.named_modules())
    handles = [modules[n].register_forward_hook(
        lambda _m, args, out, n=n: seen.setdefault(n, []).append(
            (args[0].detach(), out.detach())))
        for n in ("conv2", "conv3", "fc")]
    with torch.no_grad():
        for x, _ in batches:
            gm(x)
    for h in handles:
        h.remove()

    def maps(name, which, channels):
        t = torch.cat([pair[which] for pair in seen[name]]).double()
        return t.transpose(0, 1).reshape(channels, -1)
    first = maps("conv2", 0, 6)                      # relu(bn1(conv1(x))), conv2's input
    second = torch.relu(maps("conv2", 1, 6))
    third = torch.relu(maps("conv3", 1, 5))
    hidden = torch.relu(maps("fc", 1, 7))
    for stat in ("mean", "std"):
        scores = data_scores("activation", {"stat": stat}, gm, analysis, groups, batches)
        f = (lambda t: t.mean(1)) if stat == "mean" else (lambda t: t.std(1, unbiased=False))
        np.testing.assert_allclose(scores[groups[0].id], ((f(first) + f(second)) / 2).numpy(),
                                   rtol=1e-6)
        np.testing.assert_allclose(scores[groups[1].id], f(third).numpy(), rtol=1e-6)
        np.testing.assert_allclose(scores[groups[2].id], f(hidden).numpy(), rtol=1e-6)


# ------------------------------------------------------------------- removed classes

def test_removed_classes_score_zero(tiny):
    gm, analysis, groups, batches = tiny
    removed = np.zeros(len(analysis.classes), bool)
    removed[groups[0].classes[0]] = removed[groups[1].classes[3]] = True
    removed[groups[2].classes[[0, 6]]] = True
    for name in ("taylor", "activation", "oracle"):
        scores = data_scores(name, {"batches": 1}, gm, analysis, groups, batches, removed)
        assert scores[groups[0].id][0] == pytest.approx(0.0, abs=1e-12), name
        assert scores[groups[1].id][3] == pytest.approx(0.0, abs=1e-12), name
        assert np.abs(scores[groups[2].id][[0, 6]]).max() == pytest.approx(0.0, abs=1e-12)
        assert np.abs(scores[groups[1].id]).sum() > 0
    ens = data_scores("ensemble", {"samples": 10, "batches": 1}, gm, analysis, groups,
                      batches, removed)
    assert ens[groups[0].id][0] == 0.0


def test_removed_changes_the_network_scored(tiny):
    gm, analysis, groups, batches = tiny
    removed = np.zeros(len(analysis.classes), bool)
    removed[groups[0].classes[:3]] = True
    a = data_scores("activation", {}, gm, analysis, groups[1:2], batches)
    b = data_scores("activation", {}, gm, analysis, groups[1:2], batches, removed)
    assert not np.allclose(a[groups[1].id], b[groups[1].id])


# ------------------------------------------------------------------------------ oracle

def test_oracle_equals_explicit_recomputation(tiny):
    gm, analysis, groups, batches = tiny
    removed = np.zeros(len(analysis.classes), bool)
    removed[groups[2].classes[1]] = True
    scores = data_scores("oracle", {}, gm, analysis, groups, batches, removed)
    base = _loss(gm, analysis, removed, batches)
    for g, j in ((groups[0], 2), (groups[1], 4), (groups[2], 3)):
        trial = removed.copy()
        trial[g.classes[j]] = True
        assert scores[g.id][j] == pytest.approx(abs(_loss(gm, analysis, trial, batches) - base),
                                                rel=1e-9, abs=1e-12)


def test_oracle_uses_the_first_batches(tiny):
    gm, analysis, groups, batches = tiny
    one = data_scores("oracle", {"batches": 1}, gm, analysis, groups[1:2], batches)
    only = data_scores("oracle", {}, gm, analysis, groups[1:2], batches[:1])
    np.testing.assert_allclose(one[groups[1].id], only[groups[1].id])


# ---------------------------------------------------------------------------- ensemble

def test_fit_recovers_planted_linear_model():
    rng = np.random.default_rng(3)
    masks = sample_masks(9, 300, 0.7, rng)
    a = np.array([-0.5, 0.0, 0.2, -1.0, 0.05, -0.3, 0.0, 0.4, -0.1])
    losses = 2.0 + masks @ a + rng.normal(0, 1e-3, len(masks))
    b, coef = fit_linear_ensemble(masks, losses)
    assert b == pytest.approx(2.0, abs=1e-2)
    np.testing.assert_allclose(coef, a, atol=5e-3)


def test_sample_masks_never_empty():
    masks = sample_masks(3, 500, 0.1, np.random.default_rng(0))
    assert masks.shape == (500, 3) and masks.any(axis=1).all()
    assert 0.05 < masks.mean() < 0.4


def test_ensemble_finds_useless_and_essential_channels():
    ctx, batches = useless_and_essential()
    group = group_with(ctx, "0")
    scores = data_scores("ensemble", {"samples": 60}, ctx.gm, ctx.analysis, [group],
                         batches, seed=4)[group.id]
    # gating unit 0 changes nothing: its coefficient only picks up the fit's residual
    # (the loss is not exactly additive in unit 1 and unit 2)
    assert abs(scores[0]) < 0.01 * scores[1]
    assert scores[1] > 10 * max(abs(scores[0]), abs(scores[2]))
    assert int(np.argmax(scores)) == 1
    oracle = data_scores("oracle", {}, ctx.gm, ctx.analysis, [group], batches)[group.id]
    assert oracle[0] == pytest.approx(0.0, abs=1e-9) and int(np.argmax(oracle)) == 1


def test_ensemble_deterministic_for_a_seed(tiny):
    gm, analysis, groups, batches = tiny
    args = {"samples": 15, "batches": 1, "keep": 0.6}
    a = data_scores("ensemble", args, gm, analysis, groups[1:], batches, seed=7)
    b = data_scores("ensemble", args, gm, analysis, groups[1:], batches, seed=7)
    c = data_scores("ensemble", args, gm, analysis, groups[1:], batches, seed=8)
    for g in groups[1:]:
        np.testing.assert_array_equal(a[g.id], b[g.id])
    assert any(not np.allclose(a[g.id], c[g.id]) for g in groups[1:])


# --------------------------------------------------------------------- model untouched

def test_model_state_untouched():
    gm, analysis = _tiny(seed=2)
    groups, batches = _groups(analysis), _batches(1, 4)
    gm.train()
    gm.conv3.bias.requires_grad_(False)
    before = {k: v.clone() for k, v in gm.state_dict().items()}
    flags = {k: p.requires_grad for k, p in gm.named_parameters()}
    hooks = sum(len(m._forward_pre_hooks) for m in gm.modules())
    for name, args in (("taylor", {"flops_reg": 0.1}), ("activation", {"stat": "std"}),
                       ("oracle", {}), ("ensemble", {"samples": 8})):
        data_scores(name, args, gm, analysis, groups, batches)
        assert all(m.training for m in gm.modules()), name
        assert {k: p.requires_grad for k, p in gm.named_parameters()} == flags, name
        for k, v in gm.state_dict().items():
            assert torch.equal(v, before[k]), (name, k)
        assert all(p.grad is None for p in gm.parameters()), name
        assert sum(len(m._forward_pre_hooks) for m in gm.modules()) == hooks, name
    gm.eval()


def test_scores_use_eval_mode_statistics(tiny):
    """A model handed over in train mode is still scored with BatchNorm's running stats."""
    gm, analysis, groups, batches = tiny
    expect = data_scores("activation", {}, gm, analysis, groups, batches)
    gm.train()
    try:
        got = data_scores("activation", {}, gm, analysis, groups, batches)
    finally:
        gm.eval()
    for g in groups:
        np.testing.assert_allclose(got[g.id], expect[g.id])


# ---------------------------------------------------------------------------- spearman

def test_spearman_hand_values():
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / np.sqrt(95))
    assert spearman([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert spearman([3, 1, 2], [1, 3, 2]) == pytest.approx(-1.0)
    # d = ranks differ by (0, 0, 1, -1): 1 - 6*2/(4*15) = 0.8, no ties
    assert spearman([10, 20, 30, 40], [1, 2, 4, 3]) == pytest.approx(0.8)
    # ties on both sides: ranks (1, 2.5, 2.5, 4) vs (1.5, 1.5, 3, 4)
    assert spearman([1, 2, 2, 3], [0, 0, 5, 9]) == pytest.approx(3.75 / 4.5)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0
    assert spearman([4, 5, 6], [2, 2, 2]) == 0.0


def test_ranks_average_ties():
    assert _ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]


def test_taylor_inside_no_grad(tiny):
    gm, analysis, groups, batches = tiny
    expect = data_scores("taylor", {"batches": 1}, gm, analysis, groups, batches)
    with torch.no_grad():
        got = data_scores("taylor", {"batches": 1}, gm, analysis, groups, batches)
    for g in groups:
        np.testing.assert_allclose(got[g.id], expect[g.id])
