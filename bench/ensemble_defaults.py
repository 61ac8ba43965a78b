"""How many masks, kept with what probability, make the ensemble's linear fit meaningful?

On the trained digits CNN, for every prunable group and every ``keep`` in KEEPS, draw
``MAX_PER_UNIT`` masks per unit (seeded) and measure each mask's loss on the first 4
training batches (the criterion's default). Prefixes of that pool are samples of every
smaller size, so for ``samples`` = k masks per unit (k in PER_UNIT) we report

* the fit's held-out R^2 (5-fold cross-validation over the masks),
* the Spearman correlation of -a with oracle-abs on the same 4 batches (``oracle4``) and
  on the whole training split (``oracle_all``),
* the agreement of two disjoint mask sets (Spearman between their scores),
* the same with ``ridge`` in RIDGES.

Mask losses are cached in ``bench/out/ensemble_masks.npz`` (a rerun only refits).

    python bench/ensemble_defaults.py            # prints a markdown table, writes the JSON
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pruneql import zoo  # noqa: E402  (this checkout's pruneql)
from pruneql.criteria import Job, score_groups, spearman  # noqa: E402
from pruneql.criteria.ensemble import fit_linear_ensemble, held_out_r2, sample_masks  # noqa: E402
from pruneql.criteria.evaluation import gated_loss  # noqa: E402
from pruneql.data import load_data  # noqa: E402
from pruneql.graph.channels import analyze  # noqa: E402
from pruneql.graph.trace import trace  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
WEIGHTS = os.path.join(ROOT, "pruneql", "zoo", "digits_cnn.pt")
KEEPS = (0.7, 0.8, 0.9, 0.95)
PER_UNIT = (2, 4, 8, 16)
MAX_PER_UNIT = 32
RIDGES = (0.0, 0.001, 0.01, 0.1)


def setup():
    model = zoo.build("digits_cnn")
    model.load_state_dict(torch.load(WEIGHTS))
    model.eval()
    ds = load_data(source="digits", batch=64, val=0.2, seed=0)
    train = list(ds.train)
    gm = trace(model, (train[0][0],))
    analysis = analyze(gm)
    groups = [g for g in analysis.groups if g.prunable]
    return gm, analysis, groups, train


def mask_losses(job: Job, group, keep: float, count: int, seed: int) -> tuple:
    masks = sample_masks(group.size, count, keep, np.random.default_rng([seed, group.id]))
    losses = np.empty(count)
    for i, mask in enumerate(masks):
        trial = job.removed.copy()
        trial[group.classes[~mask]] = True
        losses[i] = gated_loss(job, trial)
    return masks, losses


def pools(gm, analysis, groups, batches) -> dict:
    """(group id, keep) -> (masks, losses), cached on disk."""
    path = os.path.join(OUT, "ensemble_masks.npz")
    cache = dict(np.load(path)) if os.path.exists(path) else {}
    job = Job(gm, analysis, groups, batches)
    found = {}
    for keep in KEEPS:
        for g in groups:
            key = f"{g.id}_{keep}"
            if key + "_m" not in cache:
                start = time.perf_counter()
                m, l = mask_losses(job, g, keep, MAX_PER_UNIT * g.size, seed=0)
                cache[key + "_m"], cache[key + "_l"] = m, l
                np.savez(path, **cache)
                print(f"  group {g.id} keep {keep}: {len(l)} masks in "
                      f"{time.perf_counter() - start:.0f}s", file=sys.stderr)
            found[(g.id, keep)] = (cache[key + "_m"], cache[key + "_l"])
    return found


def oracles(gm, analysis, groups, batches, train) -> dict:
    path = os.path.join(OUT, "ensemble_oracles.npz")
    if os.path.exists(path):
        saved = np.load(path)
        return {name: {g.id: saved[f"{name}_{g.id}"] for g in groups}
                for name in ("oracle4", "oracle_all")}
    found = {}
    for name, use in (("oracle4", batches), ("oracle_all", train)):
        found[name] = score_groups("oracle", {}, Job(gm, analysis, groups, use)).scores
    np.savez(path, **{f"{n}_{gid}": s for n, d in found.items() for gid, s in d.items()})
    return found


def measure(pool: dict, reference: dict, groups) -> list:
    rows = []
    for keep in KEEPS:
        for k in PER_UNIT:
            for ridge in RIDGES:
                rows.append(_row(pool, reference, groups, keep, k, ridge))
    return rows


def _row(pool, reference, groups, keep, k, ridge) -> dict:
    row = {"keep": keep, "per_unit": k, "ridge": ridge, "groups": {}}
    for g in groups:
        masks, losses = pool[(g.id, keep)]
        n = k * g.size
        a = -fit_linear_ensemble(masks[:n], losses[:n], ridge)[1]
        b = -fit_linear_ensemble(masks[n:2 * n], losses[n:2 * n], ridge)[1]
        row["groups"][g.id] = {
            "r2": held_out_r2(masks[:n], losses[:n], ridge),
            "oracle4": spearman(a, reference["oracle4"][g.id]),
            "oracle_all": spearman(a, reference["oracle_all"][g.id]),
            "seeds": spearman(a, b)}
    for key in ("r2", "oracle4", "oracle_all", "seeds"):
        row[key] = float(np.mean([v[key] for v in row["groups"].values()]))
    return row


def render(rows: list, groups) -> str:
    names = [g.producers[0] for g in groups]
    head = ("| keep | masks/unit | ridge | R² " + " / ".join(names) + " | mean R² "
            "| ρ oracle (same 4 batches) | ρ oracle (all train) | ρ two mask sets |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per = " / ".join(f"{r['groups'][g.id]['r2']:.2f}" for g in groups)
        lines.append(f"| {r['keep']} | {r['per_unit']} | {r['ridge']:g} | {per} | "
                     f"{r['r2']:.2f} | {r['oracle4']:+.2f} | {r['oracle_all']:+.2f} | "
                     f"{r['seeds']:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    os.makedirs(OUT, exist_ok=True)
    gm, analysis, groups, train = setup()
    batches = train[:4]
    reference = oracles(gm, analysis, groups, batches, train)
    pool = pools(gm, analysis, groups, batches)
    rows = measure(pool, reference, groups)
    with open(os.path.join(OUT, "ensemble_defaults.json"), "w") as f:
        json.dump(rows, f, indent=1, default=str)
    print(render(rows, groups))


if __name__ == "__main__":
    main()
