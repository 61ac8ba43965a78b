"""The Python API: ``compile``, ``plan``, ``sensitivity``, ``parse``. The CLI is a thin
layer over these; everything it does is reachable from here."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from pruneql import lang, passes
from pruneql.errors import PruneQLError, RecipeError
from pruneql.lang.ast import Emit, Recipe
from pruneql.passes.context import Context, Options
from pruneql.passes.emit import SUFFIXES, check_target
from pruneql.formats import save
from pruneql.report import Report
from pruneql.training import Progress, init_distributed, world

__all__ = ["Result", "compile", "plan", "sensitivity", "parse", "load_recipe", "output_for",
           "check_target", "write_sensitivity", "demo", "zoo_entries", "init_distributed",
           "world", "Progress", "PruneQLError", "Report"]


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
    written: dict | None = None       # what emit wrote: {"path", "format", ...}

    def save(self, path=None, format: str | None = None, force: bool = False) -> str:
        """Write the pruned model: TorchScript (``.pt``), a torch.export program (``.pt2``)
        or ONNX (``.onnx``), as the extension or ``format`` says; the file is reloaded and
        checked against the module before it is put in place. Returns the path written."""
        stmt = self.recipe.first(Emit)
        if path is None and stmt is not None and stmt.path:
            path = stmt.path
            format = format or stmt.format
        if path is None:
            raise RecipeError("no output path", hint="pass a path, or add `emit torchscript "
                                                     "\"out.pt\"` to the recipe")
        inputs = (self.model_path, self.recipe.path)
        self.written = save(self.module, self.example_inputs, path, format, force,
                            inputs=tuple(p for p in inputs if p))
        return self.written["path"]


def output_for(spec: str, recipe: Recipe) -> str:
    """Where ``run`` writes when no ``-o`` is given: the recipe's ``emit`` path, else
    ``<spec>-pruned.pt`` (``.pt2`` for ``emit export``)."""
    emit = recipe.first(Emit)
    if emit is not None and emit.path:
        return emit.path
    stem = os.path.splitext(os.path.basename(str(spec)))[0]
    return f"{stem}-pruned{SUFFIXES[emit.format if emit is not None else 'torchscript']}"


def _context(spec, model, example_inputs, progress=None, **options) -> Context:
    model_path = None
    if isinstance(model, (str, os.PathLike)):
        model_path, model = os.fspath(model), None
    opts = Options(model_path=model_path, **options)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    return Context(recipe=load_recipe(spec), options=opts, model=model,
                   example_inputs=example_inputs, progress=progress)


def compile(spec, model=None, example_inputs=None, hooks: tuple = (), **options) -> Result:
    """Compile a recipe against a model: prune, verify, fine-tune, measure (and write the
    pruned model when ``output=`` names a file).

    ``model`` is an ``nn.Module``, a path to weights (loaded into the recipe's ``model``),
    or None (the recipe's zoo model with default initialisation). Options: ``verify``,
    ``model_name``, ``input_shape``, ``trust_pickle``, ``trust_code`` (import a
    ``pkg.mod:fn`` the recipe names), ``seed``, ``data`` (``SOURCE[:PATH]``, overriding the
    recipe's), ``output``/``format``/``force``, ``progress`` (a ``pruneql.training.Progress``).
    ``hooks`` see every pass (``pruneql.passes.Timings``). The model handed in is never
    modified: not its weights, modes or attributes.

    >>> result = compile("model vgg16_cifar; prune conv1 by l1 keep 0.5")
    >>> result.report.after["params"] < result.report.before["params"]
    True
    """
    ctx = passes.run(passes.COMPILE, _context(spec, model, example_inputs, **options), hooks)
    return Result(module=ctx.pruned, report=ctx.report, example_inputs=ctx.example_inputs,
                  recipe=ctx.recipe, model_path=ctx.options.model_path, written=ctx.written)


def plan(spec, model=None, example_inputs=None, hooks: tuple = (), **options) -> Report:
    """The same decisions and Report as ``compile``, without touching any weights.

    >>> plan("model resnet56_cifar; prune conv1 in layer1 by l1 keep 0.5").before["flops"]
    125485696
    """
    ctx = _context(spec, model, example_inputs, **options)
    ctx.dry_run = True
    return passes.run(passes.PLAN, ctx, hooks).report


def sensitivity(spec, model=None, example_inputs=None, fractions=None, **options) -> list:
    """Li et al.'s sensitivity analysis: every group the recipe selects, pruned alone at
    each fraction (smallest-L1 filters, or the statement's weight criterion), with the
    validation accuracy. Needs data (the recipe's ``data`` or ``data=``).

    Returns rows ``{"group", "layer", "index", "fraction", "kept", "channels", "accuracy"}``.
    """
    ctx = _context(spec, model, example_inputs, fractions=tuple(fractions or ()) or None,
                   **options)
    ctx.dry_run = True
    return passes.run(passes.SENSITIVITY, ctx).sweep


def write_sensitivity(rows: list, prefix: str, force: bool = False) -> list:
    """Write ``rows`` of :func:`sensitivity` as PREFIX.csv, PREFIX.json and PREFIX.png;
    returns the paths written. The plot needs matplotlib: without it the table and JSON
    are still written (and the PNG is left out of the returned paths)."""
    from pruneql.passes.emit import write_atomic
    from pruneql.plot import sensitivity_png, sensitivity_table

    paths = {ext: check_target(f"{prefix}.{ext}", force) for ext in ("csv", "json", "png")}
    text_csv, text_json = sensitivity_table(rows)
    written = [write_atomic(paths["csv"], text_csv.encode()),
               write_atomic(paths["json"], text_json.encode())]
    png = sensitivity_png(rows)
    if png is not None:
        written.append(write_atomic(paths["png"], png))
    return written


def demo(output: str, force: bool = False, progress: Progress | None = None) -> dict:
    """`pruneql demo`: the bundled digits CNN pruned end to end (see :mod:`pruneql.demo`)."""
    from pruneql.demo import demo as run_demo

    return run_demo(output, force=force, progress=progress)


def zoo_entries() -> list:
    """The built-in models: ``[{"name", "input", "description", "paper"}]``."""
    from pruneql import zoo

    return [{"name": e.name, "input": list(e.input_shape), "description": e.description,
             "paper": e.paper} for e in (zoo.entry(n) for n in zoo.names())]
