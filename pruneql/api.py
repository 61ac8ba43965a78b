"""The Python API: ``compile``, ``plan``, ``parse``. The CLI is a thin layer over these."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from pruneql import lang, passes
from pruneql.errors import RecipeError
from pruneql.lang.ast import Emit, Recipe
from pruneql.passes.context import Context, Options
from pruneql.passes.emit import emit
from pruneql.passes.sensitivity import FRACTIONS, sweep
from pruneql.report import Report


def parse(source, path: str = "recipe") -> Recipe:
    """Parse recipe text (or bytes); ``path`` ending in .yaml/.yml selects YAML.

    >>> recipe = parse("model vgg16_cifar; prune conv1 by l1 keep 0.5")
    >>> [type(s).__name__ for s in recipe.statements]
    ['ModelStmt', 'Prune']
    """
    return lang.parse(source, path)


def load_recipe(spec) -> Recipe:
    """A Recipe from a Recipe, a path to a .prune/.yaml file, or recipe text."""
    if isinstance(spec, Recipe):
        return spec
    if isinstance(spec, os.PathLike):
        return lang.load(os.fspath(spec))
    if isinstance(spec, bytes):
        return lang.parse(spec)
    if not isinstance(spec, str):
        raise RecipeError(f"a recipe must be text, a path or a Recipe, not {type(spec).__name__}")
    if _looks_like_path(spec):
        return lang.load(spec)
    return lang.parse(spec)


def _looks_like_path(spec: str) -> bool:
    return "\n" not in spec and ";" not in spec and spec.strip().endswith(
        (".prune", ".pql", ".yaml", ".yml"))


@dataclass
class Result:
    """What ``compile`` returns: the pruned module, its report, and a way to save it."""

    module: nn.Module
    report: Report
    example_inputs: tuple
    recipe: Recipe
    model_path: str | None = None

    def save(self, path=None, format: str | None = None, force: bool = False) -> str:
        """Write TorchScript (``.pt2`` or ``format="export"``: a torch.export program)."""
        stmt = self.recipe.first(Emit)
        if path is None and stmt is not None and stmt.path:
            path = stmt.path
        if path is None:
            raise RecipeError("no output path", hint="pass a path, or add `emit torchscript "
                                                     "\"out.pt\"` to the recipe")
        if format is None and stmt is not None and not str(path).endswith(".pt2"):
            format = stmt.format
        return emit(self.module, self.example_inputs, path, format, force,
                    inputs=(self.model_path,))


def _context(spec, model, example_inputs, progress=None, **options) -> Context:
    model_path = None
    if isinstance(model, (str, os.PathLike)):
        model_path, model = os.fspath(model), None
    opts = Options(model_path=model_path, **options)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    return Context(recipe=load_recipe(spec), options=opts, model=model,
                   example_inputs=example_inputs, progress=progress)


def compile(spec, model=None, example_inputs=None, **options) -> Result:
    """Compile a recipe against a model: prune, verify, measure.

    ``model`` is an ``nn.Module``, a path to weights (loaded into the recipe's ``model``),
    or None (the recipe's zoo model with default initialisation). Options: ``verify``,
    ``model_name``, ``input_shape``, ``trust_pickle``, ``seed``, ``data`` (``SOURCE[:PATH]``,
    overriding the recipe's), ``progress`` (a ``pruneql.training.Progress``). The model
    handed in is never modified: passes that train work on a copy.

    >>> result = compile("model vgg16_cifar; prune conv1 by l1 keep 0.5")
    >>> result.report.after["params"] < result.report.before["params"]
    True
    """
    ctx = passes.run(passes.COMPILE, _context(spec, model, example_inputs, **options))
    return Result(module=ctx.pruned, report=ctx.report, example_inputs=ctx.example_inputs,
                  recipe=ctx.recipe, model_path=ctx.options.model_path)


def plan(spec, model=None, example_inputs=None, **options) -> Report:
    """The same decisions and Report as ``compile``, without touching any weights.

    >>> plan("model resnet56_cifar; prune conv1 in layer1 by l1 keep 0.5").before["flops"]
    125485696
    """
    ctx = _context(spec, model, example_inputs, **options)
    ctx.dry_run = True
    return passes.run(passes.PLAN, ctx).report


def sensitivity(spec, model=None, example_inputs=None, fractions=None, **options) -> list:
    """Li et al.'s sensitivity analysis: every group the recipe selects, pruned alone at
    each fraction (smallest-L1 filters, or the statement's weight criterion), with the
    validation accuracy. Needs data (the recipe's ``data`` or ``data=``).

    Returns rows ``{"group", "layer", "index", "fraction", "kept", "channels", "accuracy"}``.
    """
    ctx = _context(spec, model, example_inputs, **options)
    ctx.dry_run = True
    ctx = passes.run(passes.SENSITIVITY, ctx)
    if ctx.data is None:
        raise RecipeError("sensitivity analysis needs data",
                          hint="add `data digits;` (or another source) or pass --data")
    live = [sel for sel in ctx.selections if sel.skipped_by is None]
    found = sweep(ctx, live, list(fractions or FRACTIONS))
    rows = []
    for sel in live:
        layer = ctx.analysis.layers[sel.selected[0]]
        for row in found[sel.group.id]:
            rows.append({"group": sel.group.id, "layer": layer.name, "index": layer.index,
                         "channels": sel.group.size, "baseline": ctx.accuracy["before"], **row})
    return rows
