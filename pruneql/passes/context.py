"""The one object the passes read and write.

Each field has one writer, named beside it; every other pass only reads it. Graph
transformations (``modularize``, ``inplace``) edit the graph of the field they are given,
as sqlglot's rules edit the tree in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from pruneql.lang.ast import Recipe


@dataclass(frozen=True)
class Options:
    """What the caller (CLI or API) adds to the recipe."""

    model_name: str | None = None        # overrides the recipe's `model`
    model_path: str | None = None        # a state_dict / checkpoint / pickled module
    trust_pickle: bool = False
    trust_code: bool = False             # import callables the recipe names
    input_shape: tuple | None = None     # overrides the recipe's `input`
    verify: bool = True
    seed: int = 0                        # criterion and shuffling seed (never the split)
    data: str | None = None              # CLI --data SOURCE[:PATH], overrides the recipe
    trace: str | None = None             # front-end override: auto | symbolic | export
    output: str | None = None            # where emit writes (None: nothing is written)
    format: str | None = None            # output format override
    force: bool = False                  # emit may replace an existing regular file
    fractions: tuple | None = None       # the sensitivity sweep's pruned fractions


@dataclass(frozen=True)
class Selection:
    """One group a prune statement reaches (written by resolve)."""

    group: object                        # graph.channels.Group
    statement: object                    # lang.ast.Prune
    selected: tuple                      # producers the statement's selectors named
    floor: int                           # units kept by the statement's amount
    skipped_by: object = None            # lang.ast.Skip leaving the group whole


@dataclass
class Context:
    recipe: Recipe                                    # the API
    options: Options = field(default_factory=Options)  # the API
    progress: object = None                           # the API: a training.Progress
    dry_run: bool = False                             # the API: plan decides, writes nothing
    model: nn.Module | None = None                    # load: our copy, in eval mode
    model_label: str = ""                             # load
    weights: str = ""                                 # load: where the weights came from
    borrowed: frozenset = frozenset()                 # load: ids of the caller's tensors
    example_inputs: tuple | None = None               # load
    gm: object = None                                 # trace (modularize edits it)
    traced: dict = field(default_factory=dict)        # trace: front-end, eager check
    analysis: object = None                           # channels
    data: object = None                               # data: a data.Dataset
    task: object = None                               # data: tasks.Task (loss and metric)
    baseline: dict = field(default_factory=dict)      # data: {"val": metrics, "test": …}
    selections: list = field(default_factory=list)    # resolve
    sensitivity: dict = field(default_factory=dict)   # sensitivity: group id -> drop
    sweep: list = field(default_factory=list)         # sweep: rows of `pruneql sensitivity`
    scores: dict = field(default_factory=dict)        # score: group id -> per-unit score
    score_notes: dict = field(default_factory=dict)   # score: group id -> diagnostics
    cut: object = None                                # allocate: graph.cut.Cut
    target: dict | None = None                        # allocate: the budget and its result
    rounds: list = field(default_factory=list)        # recover: iterate rounds' losses
    pruned: nn.Module | None = None                   # rewrite (inplace edits it)
    verify: dict | None = None                        # verify
    recovery: dict = field(default_factory=dict)      # finetune: metrics after, history
    report: object = None                             # measure
    written: dict | None = None                       # emit

    def live(self) -> list:
        """Selections still to prune: not skipped by a line, nor by sensitivity."""
        return [sel for sel in self.selections if sel.skipped_by is None
                and not self.sensitivity.get(sel.group.id, {}).get("skip")]
