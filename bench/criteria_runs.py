"""The experiments of the criteria study (bench/criteria.py), each cached as JSON under
bench/out/criteria/ so that an interrupted study resumes where it stopped.

Everything runs on the trained digits CNN (pruneql/zoo/digits_cnn.pt) and the bundled
digits (`data digits batch 64 val 0.2`: 1,437 training and 360 validation examples, the
split fixed; a seed orders the training shuffles, the random criterion and the ensemble's
masks). Numbers are on the validation split, on which nothing is selected.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time

import numpy as np
import torch

import pruneql
from pruneql import zoo
from pruneql.criteria import Job, mutual_information, score_groups, spearman
from pruneql.data import load_data
from pruneql.graph.budget import Costs, spend
from pruneql.graph.channels import analyze
from pruneql.graph.gates import gated
from pruneql.graph.trace import trace
from pruneql.passes import Hook
from pruneql.passes.score import normalised
from pruneql.training import Hyper, evaluate, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "bench", "out", "criteria")
WEIGHTS = os.path.join(ROOT, "pruneql", "zoo", "digits_cnn.pt")
SPEC = os.path.join(ROOT, "specs", "molchanov-digits.prune")
DATA = "data digits batch 64 val 0.2"
SCORE_BATCHES = 8
TARGETS = (0.75, 0.5, 0.25, 0.1)     # FLOPs kept
FLOOR = 0.1                          # every group keeps at least 10% (as `keep 0.1`)
FINETUNE = Hyper(epochs=2, lr=1e-3)  # Li et al.'s retraining: constant lr 0.001, last epoch
# criterion label -> (registered name, arguments); "oracle" is the reference (|signed|)
RANKED = {
    "l1": ("l1", {}), "l2": ("l2", {}),
    "activation mean": ("activation", {"stat": "mean"}),
    "activation std": ("activation", {"stat": "std"}),
    "mutual information": ("mi", {}),
    "taylor": ("taylor", {}),
    "ensemble": ("ensemble", {}),
    "ensemble keep 0.95": ("ensemble", {"keep": 0.95}),
    "random": ("random", {}),
    "oracle signed": ("oracle", {"signed": True}),
    "oracle": ("oracle", {}),
}
ITERATIVE = {"taylor": "taylor(batches=4)", "l1": "l1", "l2": "l2",
             "activation mean": "activation(stat=mean, batches=4)",
             "activation std": "activation(stat=std, batches=4)", "random": "random"}
LAMBDAS = (0.0, 0.03, 0.1, 0.3, 1.0)
LOOP = "iterate until target remove 2 per step finetune 10 steps"


# ---------------------------------------------------------------------------- caching

def cached(name: str, compute):
    """The JSON value stored under ``name``, computed (and stored, with the seconds it
    took) when absent."""
    path = os.path.join(CACHE, name + ".json")
    if not os.path.exists(path):
        start = time.perf_counter()
        value = compute()
        seconds = time.perf_counter() - start
        os.makedirs(CACHE, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump({"value": value, "seconds": seconds}, f)
        os.replace(path + ".tmp", path)
        print(f"  {name}: {seconds:.0f}s", flush=True)
    with open(path) as f:
        return json.load(f)["value"]


# ---------------------------------------------------------------------------- setting

class Setting:
    """The traced trained model, its analysis, the prunable groups and the data of a seed."""

    def __init__(self, seed: int):
        torch.manual_seed(seed)
        model = zoo.build("digits_cnn")
        model.load_state_dict(torch.load(WEIGHTS))
        self.data = load_data(source="digits", batch=64, val=0.2, seed=seed)
        batches = iter(self.data.train)
        self.batches = [next(batches) for _ in range(SCORE_BATCHES)]
        self.other = [next(batches) for _ in range(SCORE_BATCHES)]
        self.gm = trace(model.eval(), (self.batches[0][0],))
        self.analysis = analyze(self.gm)
        self.groups = [g for g in self.analysis.groups if g.prunable]
        self.seed = seed

    def job(self, batches=None) -> Job:
        return Job(self.gm, self.analysis, self.groups,
                   self.batches if batches is None else batches, seed=self.seed)

    def metrics(self, model, removed, analysis=None) -> dict:
        """Val accuracy and loss of ``model`` with ``removed`` gated off."""
        with gated(model, analysis or self.analysis, removed):
            found = evaluate(model, self.data.val)
        return {"accuracy": found["accuracy"], "loss": found["loss"]}

    def flops(self, removed) -> float:
        costs = Costs(self.analysis, "flops")
        before = costs.total()
        return costs.start_from(removed).total() / before


# ------------------------------------------------------------------- scores and ranks

def scores(setting: Setting) -> dict:
    """Criterion label -> {"scores": {group id: list}, "notes", "seconds"} on the seed's
    first 8 training batches; plus the oracle on the next 8 ("oracle, other batches")."""
    found = {}
    for label, (name, args) in RANKED.items():
        start = time.perf_counter()
        if name == "mi":
            result = mutual_information(setting.job())
        elif label == "oracle":       # |signed|: the same loss changes, measured once
            signed = found["oracle signed"]["scores"]
            found[label] = {"scores": {k: np.abs(v).tolist() for k, v in signed.items()},
                            "notes": {}, "seconds": found["oracle signed"]["seconds"]}
            continue
        else:
            result = score_groups(name, args, setting.job())
        found[label] = {"scores": {str(k): v.tolist() for k, v in result.scores.items()},
                        "notes": {str(k): v for k, v in result.notes.items()},
                        "seconds": time.perf_counter() - start}
    other = score_groups("oracle", {}, setting.job(setting.other))
    found["oracle, other batches"] = {"scores": {str(k): v.tolist()
                                                 for k, v in other.scores.items()},
                                      "notes": {}, "seconds": 0.0}
    return found


def ranks(setting: Setting, found: dict) -> dict:
    """Label -> {"per": [Spearman with oracle-abs per group], "pooled": over all units of
    the per-group-normalised scores}."""
    reference = found["oracle"]["scores"]
    rows = {}
    for label, entry in found.items():
        per = [spearman(entry["scores"][str(g.id)], reference[str(g.id)])
               for g in setting.groups]
        pooled = spearman(np.concatenate([_normalised(label, entry, g) for g in setting.groups]),
                          np.concatenate([_normalised("oracle", found["oracle"], g)
                                          for g in setting.groups]))
        rows[label] = {"per": per, "pooled": pooled}
    return rows


def _normalised(label: str, entry: dict, group) -> np.ndarray:
    s = np.asarray(entry["scores"][str(group.id)])
    return s if label == "taylor" else normalised(s)


# ------------------------------------------------------------------------- one shot

def one_shot(setting: Setting, found: dict) -> dict:
    """Label -> target -> metrics: the units of all groups ranked together by their
    normalised scores (as `target flops X` does), removed in one shot down to X of the
    FLOPs, floors of 10%; accuracy and loss pruned and after FINETUNE."""
    rows = {}
    for label, entry in found.items():
        if label in ("oracle signed", "oracle, other batches", "ensemble keep 0.95"):
            continue
        rows[label] = {str(t): _cut_and_tune(setting, _removal(setting, label, entry, t))
                       for t in TARGETS}
    return rows


def _removal(setting: Setting, label: str, entry: dict, target: float) -> np.ndarray:
    costs = Costs(setting.analysis, "flops")
    groups = [(g, _normalised(label, entry, g), max(1, int(g.size * FLOOR)), 1,
               np.zeros(g.size, dtype=bool)) for g in setting.groups]
    before = costs.total()
    drops = spend(costs, groups, target * before, slack=0.005 * before)
    removed = np.zeros(len(setting.analysis.classes), dtype=bool)
    for g in setting.groups:
        removed[g.classes[drops[g.id]]] = True
    return removed


def _cut_and_tune(setting: Setting, removed: np.ndarray) -> dict:
    row = {"flops": setting.flops(removed), "pruned": setting.metrics(setting.gm, removed)}
    row["finetuned"] = tuned(setting, setting.gm, removed)
    return row


def tuned(setting: Setting, model, removed: np.ndarray, analysis=None) -> dict:
    """Metrics after FINETUNE of a copy of ``model`` with ``removed`` gated off."""
    analysis = analysis or setting.analysis
    torch.manual_seed(setting.seed)
    twin = copy.deepcopy(model)
    with gated(twin, analysis, removed):
        train(twin, setting.data, FINETUNE)
    return setting.metrics(twin, removed, analysis)


# ------------------------------------------------------------------- iterative loops

class Curve(Hook):
    """After every round of the loop: FLOPs kept and the gated network's val metrics; at
    each TARGETS checkpoint a copy of the network and its removal."""

    def __init__(self):
        self.points, self.snapshots = [], {}

    def after(self, name, ctx, seconds):
        if name != "recover" or not ctx.target:
            return
        achieved = ctx.target["achieved"]
        with gated(ctx.gm, ctx.analysis, ctx.cut.removed):
            found = evaluate(ctx.gm, ctx.data.val)
        self.points.append({"flops": achieved, "accuracy": found["accuracy"],
                            "loss": found["loss"], "kept": int((~ctx.cut.removed).sum())})
        for t in TARGETS:
            if str(t) not in self.snapshots and achieved <= t + 0.005:
                self.snapshots[str(t)] = (copy.deepcopy(ctx.gm), ctx.cut.removed.copy(),
                                          achieved, ctx.analysis)


def iterative(setting: Setting, criterion: str) -> dict:
    """Molchanov's loop (R=2, K=10) down to the last target with ``criterion`` on every
    conv and fc1 (floors 10%); the curve, and at each target the metrics pruned (after
    the loop's recovery steps) and after FINETUNE."""
    curve = Curve()
    recipe = (f"model digits_cnn; input 1x8x8; {DATA}\n"
              f"prune conv*, fc1 by {criterion} keep {FLOOR}\n{LOOP}\n"
              f"target flops {TARGETS[-1]:.0%}")
    report = pruneql.compile(recipe, WEIGHTS, seed=setting.seed, hooks=(curve,)).report
    found = {"curve": curve.points, "rounds": report.target["rounds"], "targets": {}}
    for t, (model, removed, achieved, analysis) in curve.snapshots.items():
        found["targets"][t] = {"flops": achieved,
                               "pruned": setting.metrics(model, removed, analysis),
                               "finetuned": tuned(setting, model, removed, analysis)}
    return found


# ------------------------------------------------------------------ the Molchanov spec

def molchanov(setting: Setting) -> dict:
    """specs/molchanov-digits.prune, and one-shot Taylor and L1 at the same FLOPs with the
    same final fine-tuning (5 epochs), and with as many updates in all as the loop made
    (its rounds x 10 steps, as whole epochs)."""
    spec = _compiled(SPEC, setting.seed)
    extra = math.ceil(spec["rounds"] * 10 / len(setting.data.train))
    found = {"loop": spec, "extra_epochs": extra}
    for label, crit in (("taylor", "taylor(batches=4)"), ("l1", "l1")):
        recipe = (f"model digits_cnn; input 1x8x8; {DATA}\n"
                  f"prune conv*, fc1 by {crit} keep 0.1\ntarget flops 50%\n")
        found[f"{label} one-shot"] = _compiled(recipe + "finetune epochs 5 lr 0.001", setting.seed)
        found[f"{label} one-shot, equal updates"] = _compiled(
            recipe + f"finetune epochs {5 + extra} lr 0.001", setting.seed)
    return found


def _compiled(recipe: str, seed: int) -> dict:
    report = pruneql.compile(recipe, WEIGHTS, seed=seed).report.to_dict()
    return {"flops": report["after"]["flops"] / report["before"]["flops"],
            "accuracy": report["accuracy"], "split": report["evaluation"]["split"],
            "rounds": (report.get("target") or {}).get("rounds", 1),
            "kept": {g["producers"][0]: g["channels"]["after"]
                     for g in report["groups"] if g["selected"]}}
