"""Criteria study on the demo model (Molchanov et al. 2017, Table / Fig. 2 style).

On the trained `digits_cnn` (conv1, conv2, conv3, fc1 prunable), for 3 seeds:

* the Spearman rank correlation of every criterion with oracle-abs, per layer and pooled;
* one shot: all groups ranked together (as `target flops X` does) and cut to 75/50/25/10%
  of the FLOPs, accuracy and loss without and after a fixed fine-tuning (2 epochs, constant
  lr 0.001, last epoch: Li et al.'s retraining);
* iterative: Molchanov's loop (`iterate until target remove 2 per step finetune 10
  steps`) to the same FLOPs, then the same fine-tuning; and the loop with Taylor's FLOPs
  regulariser at several lambdas;
* specs/molchanov-digits.prune beside one-shot Taylor and L1 at the same FLOPs;
* the ensemble's held-out R^2 at its defaults, and the cost of taylor.

Runs are cached in bench/out/criteria/ (delete it to start over); about 30-40 minutes on
2 shared cores from scratch.

    python bench/criteria.py                 # prints the report, rewrites docs/criteria.md
    python bench/criteria.py --no-write      # prints only
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]    # this checkout's pruneql, and bench/
import criteria_report  # noqa: E402  (the bench folder is not a package)
from criteria_runs import (ITERATIVE, LAMBDAS, ROOT, Setting, cached, iterative,  # noqa: E402
                           molchanov, one_shot, ranks, scores)
from pruneql.criteria import score_groups  # noqa: E402

OUT = os.path.join(ROOT, "docs", "criteria.md")
PNG = os.path.join(ROOT, "docs", "criteria_curves.png")


def run_seed(seed: int) -> dict:
    """Every experiment of one seed (cached)."""
    setting = Setting(seed)
    found = cached(f"scores_{seed}", lambda: scores(setting))
    zeros = np.zeros(len(setting.analysis.classes), dtype=bool)
    result = {"scores": found, "ranks": ranks(setting, found),
              "base": setting.metrics(setting.gm, zeros),
              "groups": [", ".join(g.producers) for g in setting.groups],
              "sizes": [g.size for g in setting.groups],
              "one_shot": cached(f"oneshot_{seed}", lambda: one_shot(setting, found)),
              "iterative": {}, "lambda": {}}
    for label, crit in ITERATIVE.items():
        result["iterative"][label] = cached(f"iter_{label.replace(' ', '_')}_{seed}",
                                            lambda: iterative(setting, crit))
    for lam in LAMBDAS:
        crit = f"taylor(batches=4, flops_reg={lam})"
        result["lambda"][lam] = result["iterative"]["taylor"] if lam == 0 else \
            cached(f"lambda_{lam}_{seed}", lambda: iterative(setting, crit))
    result["molchanov"] = cached(f"molchanov_{seed}", lambda: molchanov(setting))
    return result


def timing(repeats: int = 5) -> tuple[float, float]:
    """Median seconds of a plain forward+backward over 8 batches and of taylor scoring."""
    setting = Setting(0)
    plain, taylor = [], []

    def forward_backward():
        for x, y in setting.batches:
            F.cross_entropy(setting.gm(x), y).backward()
        setting.gm.zero_grad(set_to_none=True)

    def score():
        score_groups("taylor", {}, setting.job())
    forward_backward(), score()                                # warm-up
    for _ in range(repeats):
        for fn, times in ((forward_backward, plain), (score, taylor)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(plain), statistics.median(taylor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-write", action="store_true",
                        help="do not rewrite docs/criteria.md and its figure")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    seeds = [int(s) for s in opts.seeds.split(",")]
    runs = {seed: run_seed(seed) for seed in seeds}
    cost = timing()
    text = criteria_report.render(runs, cost, opts.threads)
    print(text)
    if not opts.no_write:
        criteria_report.plot(runs, PNG)
        with open(OUT, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
