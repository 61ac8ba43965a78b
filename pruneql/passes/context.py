"""The one object every pass reads and writes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn

from pruneql.lang.ast import Recipe


@dataclass(frozen=True)
class Options:
    """What the caller (CLI or API) adds to the recipe."""

    model_name: str | None = None        # overrides the recipe's `model`
    model_path: str | None = None        # a state_dict / checkpoint / pickled module
    trust_pickle: bool = False
    input_shape: tuple | None = None     # overrides the recipe's `input`
    verify: bool = True
    seed: int = 0
    data: str | None = None              # CLI --data SOURCE[:PATH], overrides the recipe


@dataclass
class Selection:
    """One group chosen for pruning, and by which statement."""

    group: object                        # graph.channels.Group
    statement: object                    # lang.ast.Prune
    selected: tuple                      # producers the statement's selectors named
    kept: int = 0
    skipped_by: object = None            # lang.ast.Skip that leaves the group alone


@dataclass
class Context:
    recipe: Recipe
    options: Options = field(default_factory=Options)
    model: nn.Module | None = None
    model_label: str = ""
    example_inputs: tuple | None = None
    gm: object = None                    # torch.fx.GraphModule, traced original
    analysis: object = None              # graph.channels.ChannelAnalysis
    selections: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)        # group id -> np.ndarray per channel
    removed: np.ndarray | None = None    # class id -> removed?
    pruned: nn.Module | None = None
    report: object = None                # report.Report
    verify: dict | None = None
    data: object = None                  # data.Dataset, when a pass needs data
    accuracy: dict = field(default_factory=dict)      # before / pruned / finetuned
    history: list = field(default_factory=list)       # fine-tuning epochs
    progress: object = None              # training.Progress the caller hands in
    dry_run: bool = False                # plan: decide, but train and rewrite nothing
    sensitivity: dict = field(default_factory=dict)   # group id -> accuracy drop pruned alone
    target: dict | None = None           # the budget asked for and what allocation achieved
