"""One test per decision pass: resolve, score, allocate — each recipe in
``tests/fixtures/passes/<pass>/`` runs the pipeline up to that pass on one tiny model, and
what the pass decided (selections; scores; removed channels, kept units, rounds) must equal
the golden ``.json`` beside it. The later passes' outputs are checked too: the pruned model
verifies and computes what the masked original computes.
"""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

import pruneql
from pruneql.passes import ANALYSE, DECIDE, Repeat, run
from pruneql.passes.context import Context
from tests.golden import check_golden

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "passes")
X = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))


class Tiny(nn.Module):
    """conv1 → conv2 (residual onto conv1's stream) → conv3 → pooled linear head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.conv3 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 6, 3)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        a = torch.relu(self.bn1(self.conv1(x)))
        b = torch.relu(self.conv2(a) + a)
        return self.fc(torch.relu(self.conv3(b)).mean((2, 3)))


def _cases(pass_name: str) -> list:
    return sorted(glob.glob(os.path.join(HERE, pass_name, "*.prune")))


def _run_to(path: str, steps: tuple) -> Context:
    recipe = pruneql.parse(open(path).read(), path=os.path.basename(path))
    return run(steps, Context(recipe=recipe, model=Tiny(), example_inputs=(X,)))


def _decided(ctx: Context) -> dict:
    cut = ctx.cut
    return {"round": cut.round, "done": cut.done, "groups": [
        {"producers": list(sel.group.producers),
         "removed": np.nonzero(cut.group_removed(sel.group))[0].tolist(),
         "kept": cut.kept_units(sel.group), "of": sel.group.size}
        for sel in ctx.selections]}


@pytest.mark.parametrize("path", _cases("resolve"), ids=os.path.basename)
def test_resolve(path):
    ctx = _run_to(path, ANALYSE)
    found = [{"producers": list(s.group.producers), "selected": list(s.selected),
              "floor": s.floor, "of": s.group.size,
              "skipped_line": s.skipped_by.span.line if s.skipped_by else None}
             for s in ctx.selections]
    check_golden(path[:-6] + ".json", json.dumps(found, indent=1) + "\n")


@pytest.mark.parametrize("path", _cases("score"), ids=os.path.basename)
def test_score(path):
    from pruneql.passes import score
    ctx = score(_run_to(path, ANALYSE))
    found = {",".join(sel.group.producers): [round(float(v), 6) for v in
                                             ctx.scores[sel.group.id]]
             for sel in ctx.selections if sel.group.id in ctx.scores}
    for scores in found.values():             # normalised once: unit length per group
        assert abs(np.linalg.norm(scores) - 1.0) < 1e-5
    check_golden(path[:-6] + ".json", json.dumps(found, indent=1) + "\n")


@pytest.mark.parametrize("path", _cases("allocate"), ids=os.path.basename)
def test_allocate(path):
    ctx = _run_to(path, ANALYSE + (DECIDE,))
    check_golden(path[:-6] + ".json", json.dumps(_decided(ctx), indent=1) + "\n")
    result = pruneql.compile(open(path).read(), Tiny(), example_inputs=X)
    assert result.report.verify["passed"]


def test_greedy_scores_one_group_per_round():
    path = os.path.join(HERE, "allocate", "greedy.prune")
    rounds = []

    class Seen:
        def before(self, name, ctx):
            pass

        def after(self, name, ctx, seconds):
            if name == "score":
                rounds.append(sorted(ctx.scores))

    recipe = pruneql.parse(open(path).read())
    run(ANALYSE + (DECIDE,), Context(recipe=recipe, model=Tiny(), example_inputs=(X,)),
        hooks=(Seen(),))
    assert len(rounds) == 2 and all(len(r) == 1 for r in rounds) and rounds[0] != rounds[1]


def test_the_decision_loop_is_visible_in_the_tuple():
    assert isinstance(DECIDE, Repeat)
    assert [s.__name__ for s in DECIDE.steps] == ["score", "allocate", "recover"]
