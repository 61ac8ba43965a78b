"""Running a model for a criterion: eval mode with gates, losses, and where a channel is read.

Every data criterion evaluates the model in eval mode (BatchNorm on its running
statistics) with the classes already removed gated off (:func:`pruneql.graph.gates.gated`),
so scores describe the current, partly pruned network. Weights, ``requires_grad`` flags
and the train/eval state of every submodule are left as they were.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from pruneql.graph.gates import channel_dim, consumers, gated
from pruneql.tasks import Task, to_device


@contextmanager
def evaluating(model: torch.nn.Module, analysis, removed: np.ndarray):
    """Eval mode with the ``removed`` classes gated off; every submodule's train/eval state
    is restored on exit. Parameters are not touched (their tensors may be the caller's)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with gated(model, analysis, removed):
            yield model
    finally:
        for m, mode in modes:
            m.training = mode


def device_of(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def xy(batch, device) -> tuple:
    x, y = batch
    return x.to(device), to_device(y, device)


@torch.no_grad()
def mean_loss(model, batches: list, task: Task) -> float:
    """The task's loss averaged over every example of ``batches`` (the mean of the batch
    means when the batches have equal sizes)."""
    device = device_of(model)
    total, count = 0.0, 0
    for batch in batches:
        x, y = xy(batch, device)
        total += float(task.loss(model(x), y, reduction="sum"))
        count += len(x)
    return total / max(count, 1)


def gated_loss(job, removed: np.ndarray) -> float:
    """The job's loss with ``removed`` classes gated off."""
    with evaluating(job.model, job.analysis, removed):
        return mean_loss(job.model, job.batches, job.task)


def local_index(analysis, groups: list) -> tuple[np.ndarray, list, int]:
    """Class id -> position in the concatenation of the groups' units (-1 elsewhere), the
    groups' offsets in it, and its width."""
    local = np.full(len(analysis.classes), -1, dtype=np.int64)
    offsets, start = [], 0
    for group in groups:
        local[group.classes] = np.arange(start, start + group.size)
        offsets.append(start)
        start += group.size
    return local, offsets, start


def split(values: np.ndarray, groups: list, offsets: list) -> dict:
    """The concatenated vector cut back into one float64 vector per group id."""
    return {g.id: np.asarray(values[o:o + g.size], dtype=np.float64).copy()
            for g, o in zip(groups, offsets)}


class Reader:
    """Maps the channel elements of one tensor to score positions: ``to_units`` turns a
    (N, elements) matrix into the per-unit mean over each unit's elements."""

    def __init__(self, elem_classes: np.ndarray, local: np.ndarray, width: int, device):
        loc = local[elem_classes]
        feats = np.nonzero(loc >= 0)[0]
        dst = loc[feats]
        counts = np.bincount(dst, minlength=width)
        self.n_features = len(loc)
        self.feats = torch.from_numpy(feats).to(device)
        self.dst = torch.from_numpy(dst).to(device)
        self.weight = torch.from_numpy(1.0 / counts[dst]).to(device)
        self.read = np.zeros(width, dtype=bool)
        self.read[dst] = True
        self.width = width

    def to_units(self, per_feature: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Add the per-unit mean of (N, features) columns into ``out`` (N, width)."""
        if out is None:
            out = torch.zeros(per_feature.shape[0], self.width, dtype=torch.float64,
                              device=per_feature.device)
        picked = per_feature.index_select(1, self.feats).double() * self.weight
        out.index_add_(1, self.dst, picked)
        return out


class Probe(Reader):
    """Where one consumer layer reads units of the scored groups (its input)."""

    def __init__(self, layer, analysis, local: np.ndarray, width: int, device):
        super().__init__(analysis.classes[layer.in_elems], local, width, device)
        self.layer = layer
        self.dim = channel_dim(layer)

    def matches(self, t) -> bool:
        """Whether ``t`` looks like the analysed input (a shared module may be called on
        other tensors too)."""
        return isinstance(t, torch.Tensor) and t.dim() >= 2 \
            and t.shape[self.dim] == self.n_features

    def per_feature(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` averaged over positions: (N, features)."""
        t = t.movedim(self.dim, 1)
        return t.reshape(t.shape[0], t.shape[1], -1).mean(dim=2)


def probes(model, analysis, local: np.ndarray, width: int) -> list:
    """A probe on every consumer that reads a unit of the scored groups."""
    device = device_of(model)
    return [Probe(layer, analysis, local, width, device) for layer in consumers(analysis)
            if (local[analysis.classes[layer.in_elems]] >= 0).any()]
