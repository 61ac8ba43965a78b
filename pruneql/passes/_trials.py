"""Sensitivity trials (Li et al. 2017), shared by the ``sensitivity`` and ``sweep`` passes:
each group pruned alone at several fractions, with the task's validation metric.

A trial zeroes a group's lowest-ranked channels where they are consumed (a gate, exactly
equivalent to removing them) and evaluates the validation set. The network's prefix that
no trial touches is computed once per batch: trials start from the cached activations at
the frontier of that prefix (``fx.Interpreter(initial_env=...)``). Under torchrun the
groups are shared out across ranks and the results gathered on every rank.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import fx

from pruneql.criteria import DATA_CRITERIA, group_weight_scores, random_scores
from pruneql.graph.gates import gated, input_masks
from pruneql.passes.context import Context
from pruneql.training import Progress, world

TRIALS = "sensitivity trials"       # the progress task: one step per group and fraction


def run_trials(ctx: Context, selections: list, fractions) -> dict:
    """Group id -> [{"fraction", "kept", <metric>}] for each fraction pruned.

    ``fractions`` is one list for every group, or a dict of lists per group id.
    """
    rank, size = world()
    runner = _Trials(ctx)
    progress = ctx.progress or Progress()
    todo = [(sel, fractions[sel.group.id] if isinstance(fractions, dict) else fractions)
            for i, sel in enumerate(selections) if i % size == rank]
    progress.start(TRIALS, sum(len(wanted) for _, wanted in todo))
    mine = {sel.group.id: runner.group(sel, wanted, progress) for sel, wanted in todo}
    progress.end(TRIALS)
    if size == 1:
        return mine
    gathered = [None] * size
    torch.distributed.all_gather_object(gathered, mine)
    return {k: v for part in gathered for k, v in part.items()}


class _Trials:
    """Evaluates one group at several pruning fractions, reusing the untouched prefix."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.gm = ctx.gm.eval()
        self.batches = list(ctx.data.val)
        self.removed = np.zeros(len(ctx.analysis.classes), dtype=bool)

    def group(self, sel, fractions, progress: Progress) -> list:
        ranking = self.ranking(sel)
        cut = _cut_nodes(self.gm, self.ctx.analysis, sel.group)
        frontier = _frontier(self.gm, cut)
        cache = [self.prefix(x, cut, frontier) for x, _ in self.batches]
        rows = []
        for fraction in fractions:
            kept = max(1, int(sel.group.size * (1 - fraction) + 1e-9))
            removed = self.removed.copy()
            drop = self.ctx.analysis.choose_removal(sel.group, ranking, kept)
            removed[sel.group.classes[drop]] = True
            rows.append({"fraction": float(fraction), "kept": sel.group.size - len(drop),
                         self.ctx.task.metric: self.score(removed, cache)})
            progress.advance(TRIALS, layer=sel.selected[0], fraction=f"{fraction:g}")
        return rows

    def ranking(self, sel) -> np.ndarray:
        """The statement's weight criterion; data-driven ones fall back to L1 (Li et al.)."""
        name = sel.statement.criterion.name
        if name == "random":
            seed = int(sel.statement.criterion.arg("seed", self.ctx.options.seed))
            return random_scores(sel.group.size, seed, sel.group.id)
        name = "l1" if name in DATA_CRITERIA else name
        return group_weight_scores(self.ctx.analysis, sel.group, sel.selected, name)

    @torch.no_grad()
    def prefix(self, x, cut: set, frontier: set) -> dict:
        """Values of the prefix nodes the rest of the graph reads (the frontier)."""
        env = {}
        for node, value in _Recorder(self.gm, cut).values(x):
            env[node] = value if node in frontier else None
        return env

    @torch.no_grad()
    def score(self, removed: np.ndarray, cache: list) -> float:
        """The task's metric on the validation batches with ``removed`` gated off."""
        meter = self.ctx.task.meter()
        with gated(self.gm, self.ctx.analysis, removed):
            for (x, y), env in zip(self.batches, cache):
                meter.add(fx.Interpreter(self.gm).run(x, initial_env=dict(env)), y)
        return meter.result()[self.ctx.task.metric]


def _cut_nodes(gm: fx.GraphModule, analysis, group) -> set:
    """Nodes a gate on ``group`` can change: its consumers and everything after them."""
    removed = np.zeros(len(analysis.classes), dtype=bool)
    removed[group.classes] = True
    names = set(input_masks(analysis, removed))
    start = [n for n in gm.graph.nodes if n.op == "call_module" and n.target in names]
    seen, todo = set(), list(start)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(node.users)
    return seen


def _frontier(gm: fx.GraphModule, cut: set) -> set:
    return {n for n in gm.graph.nodes if n not in cut and any(u in cut for u in n.users)}


class _Recorder(fx.Interpreter):
    """Runs the prefix only (every node outside ``cut``) and yields each node's value."""

    def __init__(self, gm, cut: set):
        super().__init__(gm, garbage_collect_values=False)
        self.cut = cut

    def values(self, x):
        self.env = {}
        self.args_iter = iter([x])
        for node in self.module.graph.nodes:
            if node in self.cut or node.op == "output":
                continue
            self.env[node] = self.run_node(node)
            yield node, self.env[node]
