"""Criteria measured where the papers measure them: activation after the nonlinearity and
before pooling, Taylor unaffected by the pool, the signed oracle, mutual information, and
the ensemble's ridge, held-out R^2 and its warning."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pruneql
from pruneql.criteria import EnsembleFitWarning, Job, data_scores, mutual_information
from pruneql.criteria.activation import activated_output, quantised_mi
from pruneql.criteria.ensemble import fit_linear_ensemble, held_out_r2, sample_masks
from pruneql.criteria.taylor import flops_per_channel
from tests.helpers import analyzed, group_with, useless_and_essential


def _pooled():
    """conv(1->2, 1x1) -> ReLU -> MaxPool(2) -> conv(2->1): channel 0 = relu(x),
    channel 1 = relu(2 - x/2)."""
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 3, 1),
                        nn.Flatten(), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, -0.5]).view(2, 1, 1, 1))
        net[0].bias.copy_(torch.tensor([0.0, 2.0]))
    ctx = analyzed(net, torch.zeros(1, 1, 2, 2))
    x = torch.tensor([[[[4.0, 0.0], [0.0, 0.0]]]])
    return ctx, group_with(ctx, "0"), [(x, torch.tensor([1]))]


def test_activation_is_measured_before_the_max_pool():
    ctx, group, batches = _pooled()
    assert activated_output(ctx.gm, ctx.analysis.layers["0"].node).name == "_1"   # the ReLU
    # by hand: channel 0 = [4, 0, 0, 0], channel 1 = [0, 2, 2, 2]; pooled: 4 and 2
    mean = data_scores("activation", {"stat": "mean"}, ctx.gm, ctx.analysis, [group], batches)
    std = data_scores("activation", {"stat": "std"}, ctx.gm, ctx.analysis, [group], batches)
    np.testing.assert_allclose(mean[group.id], [1.0, 1.5])         # the pooled maps: [4, 2]
    np.testing.assert_allclose(std[group.id], [np.sqrt(3.0), np.sqrt(0.75)])   # pooled: 0


def test_taylor_through_the_max_pool_equals_taylor_before_it():
    """sum(dC/dz * z) over the pooled map is the sum over the map before pooling: after the
    per-layer normalisation the scores are the same."""
    ctx, group, _ = _pooled()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, 2, 2, generator=gen)
    y = torch.randint(0, 2, (5,), generator=gen)
    scores = data_scores("taylor", {}, ctx.gm, ctx.analysis, [group], [(x, y)])[group.id]
    net = ctx.gm
    relu = torch.relu(net.get_submodule("0")(x)).detach().requires_grad_(True)
    rest = nn.Sequential(*[net.get_submodule(n) for n in ("2", "3", "4", "5")])
    loss = nn.functional.cross_entropy(rest(relu), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, relu)
    per_example = (grad * relu).mean(dim=(2, 3)).abs().mean(0).detach().double().numpy()
    np.testing.assert_allclose(scores, per_example / np.linalg.norm(per_example), rtol=1e-5)


def test_signed_oracle_is_the_loss_change_itself():
    ctx, batches = useless_and_essential()
    group = group_with(ctx, "0")
    signed = data_scores("oracle", {"signed": True}, ctx.gm, ctx.analysis, [group], batches)
    size = data_scores("oracle", {}, ctx.gm, ctx.analysis, [group], batches)
    np.testing.assert_allclose(np.abs(signed[group.id]), size[group.id])
    assert signed[group.id][1] > 0.1                     # removing the essential unit hurts
    assert signed[group.id][0] == pytest.approx(0.0, abs=1e-9)
    # unit 2 pushes class 0's logit up on every example; without it the loss moves
    assert signed[group.id][2] != pytest.approx(0.0, abs=1e-6)


def test_signed_oracle_ranks_a_harmful_unit_below_a_useless_one():
    net = nn.Sequential(nn.Linear(1, 2), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.0], [0.0]]))
        net[0].bias.copy_(torch.tensor([1.0, 1.0]))       # both units are constant 1
        net[1].weight.copy_(torch.tensor([[0.0, -2.0], [0.0, 0.0]]))   # unit 1 hurts class 0
        net[1].bias.zero_()
    ctx = analyzed(net, torch.zeros(2, 1))
    group = group_with(ctx, "0")
    batches = [(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))]
    signed = data_scores("oracle", {"signed": True}, ctx.gm, ctx.analysis, [group], batches)
    size = data_scores("oracle", {}, ctx.gm, ctx.analysis, [group], batches)
    assert signed[group.id][1] < 0 == signed[group.id][0]      # removing it helps
    assert size[group.id][1] > size[group.id][0] == 0         # by size it ranks highest


def test_quantised_mutual_information_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert quantised_mi(np.array([0, 0, 0, 0, 1, 1.0]), labels, 2) == pytest.approx(
        np.log(3) - (4 / 6) * np.log(2))       # H(y) - H(y | h): h splits {0,1} from {2}
    assert quantised_mi(np.array([5.0] * 6), labels, 2) == 0.0


def test_mutual_information_finds_the_unit_that_carries_the_label():
    ctx, batches = useless_and_essential()
    group = group_with(ctx, "0")
    job = Job(ctx.gm, ctx.analysis, [group], batches)
    mi = mutual_information(job, bins=2).scores[group.id]
    # unit 1 = relu(4 x0 + 2) is above its median exactly when x0 is high: near log 2
    assert mi[1] > 0.5 and mi[1] > 5 * max(mi[0], mi[2])
    removed = np.zeros(len(ctx.analysis.classes), bool)
    removed[group.classes[1]] = True
    job = Job(ctx.gm, ctx.analysis, [group], batches, removed)
    assert mutual_information(job).scores[group.id][1] == 0.0


def test_ridge_shrinks_the_fit_and_matches_its_closed_form():
    rng = np.random.default_rng(1)
    masks = sample_masks(6, 80, 0.8, rng)
    losses = 1.0 + masks @ np.array([-0.4, 0.1, 0.0, -0.2, 0.3, 0.0]) + rng.normal(0, .01, 80)
    b0, a0 = fit_linear_ensemble(masks, losses)
    b1, a1 = fit_linear_ensemble(masks, losses, ridge=0.05)
    xc = masks - masks.mean(0)
    closed = np.linalg.solve(xc.T @ xc + 80 * 0.05 * np.eye(6), xc.T @ (losses - losses.mean()))
    np.testing.assert_allclose(a1, closed, rtol=1e-8)
    assert b1 == pytest.approx(losses.mean() - masks.mean(0) @ closed)
    assert np.linalg.norm(a1) < np.linalg.norm(a0)
    assert np.abs(fit_linear_ensemble(masks, losses, ridge=1e6)[1]).max() < 1e-4


def test_held_out_r2_separates_additive_losses_from_noise():
    rng = np.random.default_rng(2)
    masks = sample_masks(8, 200, 0.9, rng)
    planted = 2.0 + masks @ rng.normal(size=8)
    assert held_out_r2(masks, planted + rng.normal(0, 1e-3, 200)) > 0.99
    assert held_out_r2(masks, rng.normal(size=200)) < 0.05
    assert np.isnan(held_out_r2(masks[:9], planted[:9]))        # too few to hold out


def test_ensemble_r2_reaches_the_report_and_a_poor_fit_warns():
    ctx, batches = useless_and_essential()
    group = group_with(ctx, "0")
    job = Job(ctx.gm, ctx.analysis, [group], batches, seed=3)
    from pruneql.criteria import score_groups
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = score_groups("ensemble", {"samples": 100}, job)
    notes = good.notes[group.id]
    assert notes["fit_r2"] > 0.5 and notes["masks"] == 100 and notes["halves"] > 0.4
    assert int(np.argmax(good.scores[group.id])) == 1
    with pytest.warns(EnsembleFitWarning, match="too few masks"):
        score_groups("ensemble", {"samples": 6},
                     Job(ctx.gm, ctx.analysis, [group], batches, seed=3))
    with pytest.warns(EnsembleFitWarning):
        report = pruneql.plan("model digits_cnn; data digits\n"
                              "prune fc1 by ensemble(samples=12, batches=1) keep 0.5").to_dict()
    row, = [g for g in report["groups"] if g["selected"]]
    assert set(row["scoring"]) == {"fit_r2", "halves", "masks"} and row["scoring"]["masks"] == 12


def test_flops_per_channel_follows_the_current_widths():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1),
                        nn.ReLU(), nn.Conv2d(6, 2, 1))
    ctx = analyzed(net, torch.zeros(1, 1, 5, 5))
    first, second = group_with(ctx, "0"), group_with(ctx, "2")
    full = flops_per_channel(ctx.analysis, [first, second])
    # a channel of the first group: its filter (9 x 25) and 6 kernels of the second conv
    assert full[first.id] == pytest.approx(9 * 25 + 6 * 9 * 25)
    removed = np.zeros(len(ctx.analysis.classes), bool)
    removed[second.classes[:3]] = True                    # the second conv keeps 3 filters
    now = flops_per_channel(ctx.analysis, [first, second], removed)
    assert now[first.id] == pytest.approx(9 * 25 + 3 * 9 * 25)
    assert now[second.id] == pytest.approx(4 * 9 * 25 + 2 * 25)
