"""One criterion registry: every declared criterion has one registered implementation whose
keywords are the declared arguments, and the score pass dispatches through it."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

import pruneql
from pruneql import criteria as impl
from pruneql.criteria import Job, Scored, score_groups
from pruneql.lang import criteria as declared
from tests.helpers import analyzed


def test_every_declared_criterion_is_implemented_with_its_declared_arguments():
    assert declared.CRITERIA.implemented() == declared.NAMES
    for name in declared.NAMES:
        function = declared.implementation(name)
        params = inspect.signature(function).parameters
        keywords = {p for p, v in params.items() if v.kind is v.KEYWORD_ONLY}
        expected = set(declared.spec(name).argument_names)
        if declared.spec(name).needs_data:
            expected.discard("batches")        # the dispatcher hands over the batches
        assert keywords == expected, name
        assert list(params)[0] == "job", name


def test_derived_names_follow_the_registry():
    assert impl.DATA_CRITERIA == declared.data_criteria()
    assert set(impl.WEIGHT_CRITERIA) == {"l1", "l2"}
    assert not any(declared.spec(n).needs_data for n in impl.WEIGHT_CRITERIA)


class Spy:
    def __init__(self, scores: float):
        self.calls, self.value = [], scores

    def __call__(self, job, **arguments):
        self.calls.append((job, arguments))
        return Scored({g.id: np.full(g.size, self.value) for g in job.groups})


def test_the_score_pass_dispatches_through_the_registry(monkeypatch):
    spy = Spy(3.0)
    monkeypatch.setitem(declared.CRITERIA._implementations, "ensemble", spy)
    report = pruneql.plan("model digits_cnn; data digits\n"
                          "prune conv2, conv3 by ensemble(keep=0.8) keep 0.5").to_dict()
    (job, arguments), = spy.calls                 # both groups in one call
    assert arguments == {"samples": None, "keep": 0.8, "ridge": 0.0}
    assert len(job.batches) == 4                  # the declared default batches
    assert sorted(job.selected) == sorted(g.id for g in job.groups) and len(job.groups) == 2
    kept = [g["channels"]["after"] for g in report["groups"] if g["selected"]]
    assert kept == [32, 32]


def test_score_groups_fills_in_defaults_and_needs_batches():
    torch.manual_seed(0)
    ctx = analyzed(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), torch.ones(2, 3))
    groups = [g for g in ctx.analysis.groups if g.prunable]
    with pytest.raises(ValueError, match="needs at least one batch"):
        score_groups("taylor", {}, Job(ctx.gm, ctx.analysis, groups))
    random = score_groups("random", {}, Job(ctx.gm, ctx.analysis, groups, seed=5))
    again = score_groups("random", {"seed": 5}, Job(ctx.gm, ctx.analysis, groups, seed=0))
    assert np.array_equal(random.scores[groups[0].id], again.scores[groups[0].id])
    assert not random.normalised


def test_weight_scores_are_normalised_once_over_live_units(monkeypatch):
    """The score pass divides by the norm of the live units; taylor's own normalisation
    is not repeated."""
    from pruneql.passes import Hook

    seen = []

    class Scores(Hook):
        def after(self, name, ctx, seconds):
            if name == "score":
                seen.append({gid: s.copy() for gid, s in ctx.scores.items()})

    pruneql.plan("model digits_cnn; data digits\nprune conv2 by l1 keep 0.5\n"
                 "prune conv3 by taylor(batches=1) keep 0.5\niterate 2 steps",
                 hooks=(Scores(),))
    assert len(seen) == 2
    for scores in seen:
        for s in scores.values():
            assert np.linalg.norm(s) == pytest.approx(1.0)
    assert sum((s == 0).sum() for s in seen[1].values()) == 16 + 16   # removed: 0
