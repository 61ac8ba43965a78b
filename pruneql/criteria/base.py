"""What every criterion receives and returns, and the one dispatcher.

A criterion is declared once in :mod:`pruneql.lang.criteria` (its arguments, their
defaults, whether it needs data) and implemented once here, by a function registered
against the declaration::

    @register("l2")
    def l2_scores(job: Job) -> Scored: ...

:func:`score_groups` is how everything else calls a criterion: it fills in the declared
defaults, hands data criteria the first ``batches`` batches, and calls the implementation
with the remaining arguments as keywords.

>>> import torch
>>> from pruneql.graph.channels import analyze
>>> from pruneql.graph.trace import trace
>>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 1), torch.nn.Conv2d(3, 1, 1))
>>> with torch.no_grad():
...     _ = net[0].weight.copy_(torch.tensor([1.0, -3.0, 2.0]).view(3, 1, 1, 1))
>>> analysis = analyze(trace(net, (torch.ones(1, 1, 2, 2),)))
>>> result = score_groups("l1", {}, Job(analysis.gm, analysis, analysis.groups[:1]))
>>> result.scores[0].tolist(), result.normalised
([1.0, 3.0, 2.0], False)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pruneql.errors import Span
from pruneql.lang.criteria import implementation, spec
from pruneql.tasks import Task

__all__ = ["Job", "Scored", "score_groups", "first_batches"]

CLASSIFICATION = Task.named("classification")


@dataclass
class Job:
    """The groups one criterion (with one set of arguments) scores, and what it may use.

    ``model`` is the traced module ``analysis`` describes; ``removed`` (a bool per class
    id) marks classes already gone, which every evaluation gates off; ``selected`` maps a
    group id to the producers its statement named (weight criteria score those filters);
    ``batches`` are ``(x, y)`` pairs for data criteria; ``seed`` seeds random choices.
    """

    model: torch.nn.Module
    analysis: object
    groups: list
    batches: list = field(default_factory=list)
    removed: np.ndarray | None = None
    selected: dict = field(default_factory=dict)
    seed: int = 0
    task: Task | None = None

    def __post_init__(self):
        if self.removed is None:
            self.removed = np.zeros(len(self.analysis.classes), dtype=bool)
        self.removed = np.asarray(self.removed, dtype=bool)
        self.task = self.task or CLASSIFICATION
        self.batches = list(self.batches)

    def producers(self, group) -> tuple:
        """The producers whose filters score ``group``: the statement's, else all."""
        return tuple(self.selected.get(group.id) or group.producers)

    def gone(self, group) -> np.ndarray:
        """Per group position: already removed?"""
        return self.removed[group.classes]


@dataclass
class Scored:
    """Per group id, one float64 score per group unit (higher = keep).

    ``normalised``: the criterion already divided each group's vector by its l2 norm
    (taylor does, before its FLOPs term); the score pass normalises the others.
    ``notes``: per group id, diagnostics of the scores (the ensemble's held-out R^2) that
    the report shows beside the group.
    """

    scores: dict
    normalised: bool = False
    notes: dict = field(default_factory=dict)


def score_groups(name: str, args: dict, job: Job, span: Span | None = None) -> Scored:
    """Score ``job.groups`` by criterion ``name`` with the recipe's ``args``.

    The declared defaults fill in what ``args`` leaves out; a data criterion gets the
    first ``batches`` of ``job.batches`` (all when None) and an error when there are none.
    """
    declared = spec(name)
    given = {**declared.defaults(), **dict(args or {})}
    if declared.needs_data:
        job.batches = first_batches(job.batches, given.pop("batches", None))
        if not job.batches:
            raise ValueError(f"criterion {name} needs at least one batch of data")
    if not job.groups:
        return Scored({})
    return implementation(name, span)(job, **given)


def first_batches(batches: list, count) -> list:
    """The first ``count`` batches (all when ``count`` is None; at least one).

    >>> first_batches([1, 2, 3], 2), first_batches([1, 2, 3], None)
    ([1, 2], [1, 2, 3])
    """
    return list(batches) if count is None else list(batches)[:max(1, int(count))]
