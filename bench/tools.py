"""The two tools under test, driven the same way: a zoo model, a uniform L1 amount.

``prune_pq`` is ``pruneql.compile`` (its passes timed by the hooks handed in), ``prune_tp``
is Torch-Pruning's pruner construction + ``step()``. Both take a freshly built model and
return the seconds they took, measured around the call alone.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:               # measure this working tree's pruneql
    sys.path.insert(0, ROOT)

import torch                            # noqa: E402
from torch import nn                    # noqa: E402

import pruneql                          # noqa: E402
from pruneql import zoo                 # noqa: E402

try:
    import torch_pruning as tp
except ImportError:                     # pragma: no cover - a benchmark-only dependency
    sys.exit("the benchmark needs Torch-Pruning: pip install -e \".[bench]\" "
             "(or pip install torch-pruning)")

INNER = re.compile(r"layer\d+\.\d+\.conv1")
TOOLS = ("pq", "tp", "pqv")
LABEL = {"pq": "PruneQL", "pqv": "PruneQL + verify", "tp": "Torch-Pruning",
         "orig": "original", "tp_fx": "Torch-Pruning's model traced by torch.fx (control)"}


@dataclass(frozen=True)
class Spec:
    """A benchmark model: a zoo name, optionally ``:inner`` (block-internal convs only)."""

    name: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> "Spec":
        name, _, variant = text.strip().partition(":")
        if name not in zoo.names():
            raise SystemExit(f"unknown zoo model {name!r}; one of {', '.join(zoo.names())}")
        if variant not in ("", "inner"):
            raise SystemExit(f"unknown variant {variant!r} (only ':inner')")
        if variant and not name.endswith("_cifar"):
            raise SystemExit("':inner' is for the CIFAR ResNets (layer*.N.conv1)")
        return cls(name, variant)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.variant}" if self.variant else self.name

    def build(self) -> nn.Module:
        return zoo.build(self.name).eval()      # seeded: identical weights every time

    def inputs(self, batch: int, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(batch, *zoo.entry(self.name).input_shape, generator=g)

    def recipe(self, keep: float, round_to: int | None) -> str:
        select = "conv1 in layer{1..3}" if self.variant == "inner" else "**"
        return f"prune {select} by l1 keep {keep:g}" + (f" round {round_to}" if round_to else "")

    def tp_ignored(self, model: nn.Module) -> list:
        """Torch-Pruning's ``ignored_layers``: the classifier (PruneQL freezes it because it
        reaches the model output); for ``:inner`` every layer PruneQL's recipe leaves out."""
        layers = [(n, m) for n, m in model.named_modules()
                  if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
        if self.variant == "inner":
            return [m for n, m in layers if not INNER.fullmatch(n)]
        linears = [m for _, m in layers if isinstance(m, nn.Linear)]
        return [linears[-1] if linears else layers[-1][1]]


def prune_pq(spec: Spec, model, x, keep, round_to, verify: bool, hooks: tuple = ()):
    """Seconds and Result of ``pruneql.compile``."""
    t0 = time.perf_counter()
    result = pruneql.compile(spec.recipe(keep, round_to), model, example_inputs=x,
                             verify=verify, hooks=hooks)
    return time.perf_counter() - t0, result


def prune_tp(spec: Spec, model, x, keep, round_to, importance=None):
    """Seconds and the (in place) pruned model: pruner construction + ``step()``.
    ``pruning_ratio = 1 - keep``: Torch-Pruning keeps ``int(n * (1 - ratio))`` channels per
    group (local pruning), PruneQL ``floor(n * keep)`` -- the same count."""
    ignored = spec.tp_ignored(model)
    importance = importance or tp.importance.MagnitudeImportance(p=1)
    t0 = time.perf_counter()
    pruner = tp.pruner.MagnitudePruner(model, x, importance=importance,
                                       pruning_ratio=1.0 - keep, ignored_layers=ignored,
                                       round_to=round_to)
    pruner.step()
    return time.perf_counter() - t0, model


def run_tool(tool: str, spec: Spec, model, x, keep, round_to, hooks: tuple = ()):
    """``(seconds, output)`` of one tool: ``pq``, ``pqv`` (PruneQL with verify) or ``tp``."""
    if tool == "tp":
        return prune_tp(spec, model, x, keep, round_to)
    return prune_pq(spec, model, x, keep, round_to, verify=(tool == "pqv"), hooks=hooks)


class ProducerL1(tp.importance.Importance):
    """PruneQL's ``l1`` in Torch-Pruning's group API, for the decision cross-check: a
    channel's score is the mean, over the layers that *write* it, of its filter's L1 norm,
    each layer's norms divided by that layer's mean when several layers are coupled
    (``pruneql/criteria/weights.py``)."""

    @torch.no_grad()
    def __call__(self, group):
        writers = [(i, dep) for i, (dep, _) in enumerate(group)
                   if dep.pruning_fn in _out_fns()]
        if not writers:
            return None
        n = len(group[0][1])
        total, count = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        coupled = len({id(dep.layer) for _, dep in writers}) > 1
        for i, dep in writers:
            norms = dep.layer.weight.data.flatten(1).abs().sum(1, dtype=torch.float64)
            if coupled:
                norms = norms / (float(norms.mean()) or 1.0)
            root = torch.as_tensor(group[i].root_idxs)
            total.scatter_add_(0, root, norms[group[i][1]])
            count.scatter_add_(0, root, torch.ones(len(root), dtype=torch.float64))
        return total / count.clamp(min=1)


def _out_fns() -> tuple:
    f = tp.pruner.function
    return (f.prune_conv_out_channels, f.prune_depthwise_conv_out_channels,
            f.prune_linear_out_channels)
