"""Criteria study on the demo model (Molchanov et al. 2017, Table / Fig. 2 style).

For every prunable group of the trained `digits_cnn` (conv1, conv2, conv3, fc1), score the
channels by each criterion on a few training batches and report

* the Spearman rank correlation of each criterion with oracle-abs (per layer, mean over
  layers, and pooled over all channels of all layers),
* the validation accuracy after removing 50% of the channels of every prunable group by
  each criterion, without fine-tuning (removals applied with gates),
* the cost of `taylor` scoring relative to a plain forward+backward over the same batches.

    python bench/criteria.py                 # prints the table and rewrites docs/criteria.md
    python bench/criteria.py --batches 16 --no-write
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from pruneql import zoo
from pruneql.criteria import WEIGHT_CRITERIA, data_scores, random_scores, spearman
from pruneql.data import load_data
from pruneql.graph.channels import analyze
from pruneql.graph.gates import gated
from pruneql.graph.trace import trace
from pruneql.training import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "criteria.md")
WEIGHTS = os.path.join(ROOT, "pruneql", "zoo", "digits_cnn.pt")
ENSEMBLE_BIG = "ensemble(samples=800, keep=0.9)"
HELD_OUT = "oracle, other batches"
CRITERIA = ("l1", "l2", "activation(mean)", "activation(std)", "taylor", "ensemble",
            ENSEMBLE_BIG, "random", "oracle", HELD_OUT)
DATA = {"activation(mean)": ("activation", {"stat": "mean"}),
        "activation(std)": ("activation", {"stat": "std"}),
        "taylor": ("taylor", {}), "ensemble": ("ensemble", {}),
        ENSEMBLE_BIG: ("ensemble", {"samples": 800, "keep": 0.9}),
        "oracle": ("oracle", {}), HELD_OUT: ("oracle", {})}


def weight_scores(analysis, group, name: str) -> np.ndarray:
    """Mean over the group's producers' filters (as ``pruneql.passes.score`` does)."""
    total, count = np.zeros(group.size), np.zeros(group.size)
    for producer in group.producers:
        scores = WEIGHT_CRITERIA[name](analysis.layers[producer].module, None)
        np.add.at(total, group.filters[producer], scores)
        np.add.at(count, group.filters[producer], 1)
    return total / np.maximum(count, 1)


def all_scores(gm, analysis, groups, batches, other, seed: int) -> tuple[dict, dict]:
    """Criterion -> {group id -> scores}, and criterion -> seconds spent scoring.

    ``other`` are the next training batches: the oracle measured on them shows how far
    the oracle ranking itself moves with the data (a ceiling for any criterion)."""
    scores, seconds = {}, {}
    for crit in CRITERIA:
        start = time.perf_counter()
        if crit in WEIGHT_CRITERIA:
            scores[crit] = {g.id: weight_scores(analysis, g, crit) for g in groups}
        elif crit == "random":
            scores[crit] = {g.id: random_scores(g.size, seed, g.id) for g in groups}
        else:
            name, args = DATA[crit]
            scores[crit] = data_scores(name, args, gm, analysis, groups,
                                       other if crit == HELD_OUT else batches, seed=seed)
        seconds[crit] = time.perf_counter() - start
        print(f"  scored by {crit} in {seconds[crit]:.2f}s", file=sys.stderr)
    return scores, seconds


def pruned_accuracy(gm, analysis, groups, scores: dict, val, keep: float) -> float:
    removed = np.zeros(len(analysis.classes), dtype=bool)
    for g in groups:
        kept = int(np.floor(g.size * keep))
        removed[g.classes[analysis.choose_removal(g, scores[g.id], kept)]] = True
    with gated(gm, analysis, removed):
        return evaluate(gm, val)["accuracy"]


def plain_pass(gm, batches) -> None:
    """One forward and backward per batch with the parameters' gradients, as in training."""
    for x, y in batches:
        F.cross_entropy(gm(x), y).backward()
    gm.zero_grad(set_to_none=True)


def timing(gm, analysis, groups, batches, repeats: int = 5) -> tuple[float, float]:
    """Median seconds of a plain forward+backward and of taylor scoring, alternating."""
    plain, taylor = [], []
    plain_pass(gm, batches)                                       # warm-up
    data_scores("taylor", {}, gm, analysis, groups, batches)
    for _ in range(repeats):
        start = time.perf_counter()
        plain_pass(gm, batches)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        data_scores("taylor", {}, gm, analysis, groups, batches)
        taylor.append(time.perf_counter() - start)
    return statistics.median(plain), statistics.median(taylor)


def study(n_batches: int, seed: int, keep: float) -> dict:
    torch.manual_seed(seed)
    model = zoo.build("digits_cnn")
    model.load_state_dict(torch.load(WEIGHTS))
    model.eval()
    ds = load_data(source="digits", batch=64, val=0.2, seed=0)
    it = iter(ds.train)
    n_batches = min(n_batches, len(ds.train) // 2)
    batches = [next(it) for _ in range(n_batches)]
    other = [next(it) for _ in range(n_batches)]
    gm = trace(model, (batches[0][0],))
    analysis = analyze(gm)
    groups = [g for g in analysis.groups if g.prunable]
    base = evaluate(gm, ds.val)["accuracy"]
    scores, seconds = all_scores(gm, analysis, groups, batches, other, seed)
    oracle = scores["oracle"]
    rows = {}
    for crit in CRITERIA:
        per = [spearman(scores[crit][g.id], oracle[g.id]) for g in groups]
        pooled = spearman(np.concatenate([scores[crit][g.id] for g in groups]),
                          np.concatenate([oracle[g.id] for g in groups]))
        acc = pruned_accuracy(gm, analysis, groups, scores[crit], ds.val, keep)
        rows[crit] = {"per": per, "mean": float(np.mean(per)), "pooled": pooled, "acc": acc,
                      "seconds": seconds[crit]}
    plain, taylor = timing(gm, analysis, groups, batches)
    return {"groups": groups, "rows": rows, "base": base, "plain": plain, "taylor": taylor,
            "batches": batches, "val": len(ds.val.dataset), "keep": keep}


def render(result: dict, n_batches: int, threads: int) -> str:
    groups, rows = result["groups"], result["rows"]
    names = [", ".join(g.producers) + f" ({g.size})" for g in groups]
    examples = sum(len(y) for _, y in result["batches"])
    head = ("| criterion | " + " | ".join(names) + " | mean | pooled | val acc @ keep "
            f"{result['keep']:g} | scoring s |")
    lines = [head, "|" + "---|" * (len(groups) + 5)]
    for crit, row in rows.items():
        lines.append(f"| {crit} | " + " | ".join(f"{r:+.2f}" for r in row["per"])
                     + f" | **{row['mean']:+.2f}** | {row['pooled']:+.2f} | "
                     f"{100 * row['acc']:.1f}% | {row['seconds']:.2f} |")
    table = "\n".join(lines)
    ratio = result["taylor"] / result["plain"]
    r = {k: v["mean"] for k, v in rows.items()}
    accs = {k: 100 * v["acc"] for k, v in rows.items()}
    best_acc = max((k for k in accs if not k.startswith("oracle")), key=accs.get)
    return f"""# Pruning criteria on the demo model

Generated by `python bench/criteria.py` (options: `--batches N`, `--seed S`, `--threads T`,
`--no-write`). Model: `zoo.build("digits_cnn")` with the trained weights
`pruneql/zoo/digits_cnn.pt`; data: `load_data(source="digits", batch=64, val=0.2, seed=0)`.
Every criterion scores the channels of each prunable group (conv1, conv2, conv3, fc1) on
the same first {len(result['batches'])} training batches ({examples} examples; the loader's
shuffle is seeded), on the full network (no channel removed). `torch` ran on {threads}
CPU thread(s).

**Spearman rank correlation with oracle-abs** (Molchanov et al. 2017): per layer, the mean
over the layers (the paper's summary number), and pooled over all {sum(g.size for g in groups)}
channels of all layers (a global ranking, which needs scores comparable across layers).
**val acc** is the validation accuracy ({result['val']} examples) after removing
{100 * (1 - result['keep']):g}% of the channels of every prunable group (floor of half, lowest
scores first) by each criterion, without fine-tuning; the unpruned model has
{100 * result['base']:.1f}%.

{table}

* `l1`, `l2`: filter weight norms (Li et al. 2017); `l2` ranks a layer like Molchanov's
  "weight" criterion (mean squared weight). `activation(mean|std)`, `taylor`, `ensemble`
  (defaults `samples=200, keep=0.7`, first 4 batches; and a larger run with 800 masks
  kept at 0.9), `oracle`: `pruneql.criteria.data_driven`; `random`: uniform, seeded.
  `oracle` correlates 1 with itself by definition; its accuracy row is what removing the
  channels with the smallest individual |dC| gives. `oracle, other batches` is the oracle
  measured on the next {len(result['batches'])} training batches: how much the oracle ranking
  itself depends on the examples (criteria scored on the same batches as the oracle share
  that sampling noise with it, so this is not a ceiling for them).
* `taylor` scores are l2-normalised per layer (always on), so its pooled column is the
  paper's cross-layer ranking; `oracle` is in loss units and comparable across layers as is.
  Weight norms and activations are not normalised, so their pooled numbers mix scales.
* Paper reference (VGG-16 on Birds-200, mean over layers): weight 0.27, activation mean
  0.56, activation std 0.57, Taylor 0.73, random 0.

**What this shows.** Taylor's ranking agrees with oracle-abs far better than weight
magnitude (mean {r['taylor']:+.2f} vs l1 {r['l1']:+.2f} / l2 {r['l2']:+.2f}); random is near
0 ({r['random']:+.2f}); activation std ({r['activation(std)']:+.2f}) beats activation mean
({r['activation(mean)']:+.2f}). Taylor first, activation std next and random last is the
paper's ordering; unlike the paper, activation mean does no better than weight magnitude
here, and the magnitude and activation criteria do well on fc1 but poorly on the conv layers (a tiny
8x8-digits CNN, not VGG-16 on Birds-200). The ensemble criterion at its defaults is noisy here (the
least-squares fit of up to 65 coefficients from 200 masks dropping 30% of a layer, where losses
are far from additive); more masks closer to the full network (800 masks, keep 0.9)
raise it to {r[ENSEMBLE_BIG]:+.2f}. The oracle on other batches agrees with itself only at
{r[HELD_OUT]:+.2f}: on {examples} examples many single-channel loss changes are tiny and noisy.
Accuracy after removing half of every layer at once, without fine-tuning, is a harsh and
noisy test (two oracles measured on different batches differ by
{abs(accs['oracle'] - accs[HELD_OUT]):.0f} points); the best non-oracle criterion here is
{best_acc} ({accs[best_acc]:.1f}%).

**Cost of `taylor`.** Median of {5} alternating runs over the same {len(result['batches'])}
batches: plain forward+backward (parameter gradients, mean loss) {1e3 * result['plain']:.1f} ms,
`taylor` scoring (one forward + one backward per batch, gradients w.r.t. the consumed
activations only, all groups at once) {1e3 * result['taylor']:.1f} ms: **ratio {ratio:.2f}**.
`taylor` needs no parameter gradients (it switches them off while scoring and restores
the flags), which pays for its per-channel products; timings are noisy on a shared CPU.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8, help="training batches to score on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 gives the steadiest timings)")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/criteria.md")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    result = study(opts.batches, opts.seed, opts.keep)
    text = render(result, opts.batches, opts.threads)
    print(text)
    if not opts.no_write:
        with open(OUT, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
