"""Molchanov et al.'s procedure as a recipe: `iterate until target remove R per step
finetune K steps` with `target flops X` — rescore the gated network, remove the R globally
lowest units, K updates, until the budget is met — on a small CNN and the bundled digits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pruneql
from pruneql.passes import Hook


class Small(nn.Module):
    """conv 1→16→32 (pool), fc 512→64→10: a conv2 channel costs ~10x an fc1 unit."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.fc1, self.fc2 = nn.Linear(32 * 16, 64), nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def small() -> Small:
    torch.manual_seed(0)
    return Small().eval()


HEAD = "input 1x8x8; data digits batch 32 val 0.2\n"


class Rounds(Hook):
    """Per round: units removed so far, and each scored group's l2 norm over live units
    and largest |score| among removed units."""

    def __init__(self):
        self.removed, self.norms, self.gone_scores, self.recovered = [], [], [], 0

    def after(self, name, ctx, seconds):
        if name == "allocate":
            self.removed.append(int(ctx.cut.removed.sum()))
        if name == "recover":
            self.recovered = len(ctx.rounds)
        if name == "score":
            gone = (ctx.cut.removed if ctx.cut is not None
                    else np.zeros(len(ctx.analysis.classes), bool))
            groups = {s.group.id: s.group for s in ctx.selections}
            self.norms.append({gid: float(np.linalg.norm(s[~gone[groups[gid].classes]]))
                               for gid, s in ctx.scores.items()})
            self.gone_scores.append(max((float(np.abs(s[gone[groups[gid].classes]]).max())
                                         for gid, s in ctx.scores.items()
                                         if gone[groups[gid].classes].any()), default=0.0))


def _groups(report) -> dict:
    return {g["producers"][0]: g["channels"] for g in report["groups"] if g["selected"]}


def test_loop_meets_the_budget_honours_floors_and_round_and_verifies():
    hook = Rounds()
    result = pruneql.compile(HEAD + """prune conv1, conv2 by taylor(batches=2) keep 0.25
        prune fc1 by taylor(batches=2) keep 0.125 round 2
        iterate until target remove 1 per step finetune 2 steps
        target flops 60%""", small(), hooks=(hook,))
    report = result.report.to_dict()
    assert abs(report["after"]["flops"] / report["before"]["flops"] - 0.6) <= 0.01
    assert report["target"]["achieved"] <= 0.6 + 0.005
    assert report["verify"]["passed"]
    kept = _groups(report)
    assert kept["conv1"]["after"] >= 4 and kept["conv2"]["after"] >= 8
    assert kept["fc1"]["after"] >= 8 and kept["fc1"]["after"] % 2 == 0
    assert kept["fc1"]["after"] < 64            # the round-2 group took part
    # every round rescored (one score per allocate) and recovered with K updates
    assert len(hook.norms) == len(hook.removed) == report["target"]["rounds"] > 1
    assert hook.recovered == report["target"]["rounds"]


def test_remove_r_per_step_removes_r_units_per_round():
    hook = Rounds()
    report = pruneql.plan(HEAD + """prune conv1, conv2, fc1 by l1 keep 0.2
        iterate until target remove 3 per step
        target flops 50%""", small(), hooks=(hook,)).to_dict()
    steps = np.diff([0] + hook.removed)
    assert (steps[:-1] == 3).all() and 1 <= steps[-1] <= 3
    assert report["target"]["rounds"] == len(hook.removed) >= 3
    removed = sum(g["before"] - g["after"] for g in _groups(report).values())
    assert removed == hook.removed[-1]
    assert abs(report["after"]["flops"] / report["before"]["flops"] - 0.5) <= 0.01


def test_scores_are_normalised_once_per_round_on_the_gated_network():
    hook = Rounds()
    pruneql.plan(HEAD + """prune conv1, conv2 by taylor(batches=2) keep 0.2
        prune fc1 by l1 keep 0.2
        iterate until target remove 2 per step
        target flops 70%""", small(), hooks=(hook,))
    assert len(hook.norms) > 2
    for norms in hook.norms:                    # unit l2 norm over the live units
        assert all(n == pytest.approx(1.0) for n in norms.values()), norms
    assert hook.gone_scores[0] == 0.0 and max(hook.gone_scores) == 0.0


def test_unreachable_target_fails_in_the_first_round_with_the_best_achievable():
    floors = HEAD + "prune conv1, conv2, fc1 by taylor(batches=1) keep 0.5\n"
    best = pruneql.plan(floors, small()).to_dict()
    ratio = best["after"]["flops"] / best["before"]["flops"]
    hook = Rounds()
    with pytest.raises(pruneql.PruneQLError) as caught:
        pruneql.compile(floors + "iterate until target remove 1 per step finetune 2 steps\n"
                        "target flops 20%", small(), hooks=(hook,))
    message = str(caught.value)
    assert "out of reach" in message and f"leaves {ratio:.1%} of the baseline" in message
    assert hook.removed == [] and hook.recovered == 0     # no round was spent on it


def test_flops_regularisation_prefers_costly_channels_across_groups():
    def run(reg):
        hook = Rounds()
        crit = f"taylor(batches=2, flops_reg={reg})"
        report = pruneql.plan(HEAD + f"""prune conv1, conv2, fc1 by {crit} keep 0.1
            iterate until target remove 1 per step
            target flops 60%""", small(), hooks=(hook,)).to_dict()
        return report["target"]["rounds"], _groups(report)
    rounds_plain, plain = run(0)
    rounds_reg, reg = run(2)
    assert rounds_reg < rounds_plain           # fewer, costlier units for the same FLOPs
    # a conv1 channel (its filter and conv2's kernels reading it) costs the most
    assert reg["conv1"]["after"] < plain["conv1"]["after"]
    assert reg["fc1"]["after"] >= plain["fc1"]["after"]


def test_ensembles_are_refitted_each_round_on_the_live_units():
    notes = []

    class Notes(Hook):
        def after(self, name, ctx, seconds):
            if name == "score":
                notes.append(dict(ctx.score_notes))

    report = pruneql.plan(HEAD + """prune conv1 by ensemble(batches=1) keep 0.5
        iterate 2 steps""", small(), hooks=(Notes(),)).to_dict()
    (gid,) = notes[0]
    assert [n[gid]["masks"] for n in notes] == [16 * 16, 16 * 12]   # 16 per live unit
    row, = [g for g in report["groups"] if g["selected"]]
    assert row["channels"]["after"] == 8 and row["scoring"]["masks"] == 16 * 12
