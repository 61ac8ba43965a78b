"""The Python API: ``compile``, ``plan``, ``sensitivity``, ``parse``. The CLI is a thin
layer over these; everything it does is reachable from here."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from pruneql import lang, passes, replay, resources
from pruneql.errors import PruneQLError, RecipeError
from pruneql.lang.ast import Emit, Recipe
from pruneql.passes.context import Context, Options
from pruneql.passes.emit import SUFFIXES, check_target
from pruneql.formats import save
from pruneql.report import Report
from pruneql.training import Progress, init_distributed, world

__all__ = ["Result", "apply", "write_plan", "spec_entries", "compile", "plan", "sensitivity",
           "parse", "load_recipe", "output_for", "check_target", "write_sensitivity", "demo", "zoo_entries", "init_distributed",
           "world", "Progress", "PruneQLError", "Report"]


def parse(source, path: str = "recipe") -> Recipe:
    """Parse recipe text (or bytes); ``path`` ending in .yaml/.yml selects YAML.

    >>> recipe = parse("model vgg16_cifar; prune conv1 by l1 keep 0.5")
    >>> [type(s).__name__ for s in recipe.statements]
    ['ModelStmt', 'Prune']
    """
    return lang.parse(source, path)


def load_recipe(spec) -> Recipe:
    """A Recipe from a Recipe, a path to a .prune/.yaml file, the name of a bundled recipe
    (``pruneql specs``), or recipe text.

    >>> load_recipe("vgg16").first(lang.ast.ModelStmt).name
    'vgg16_cifar'
    """
    if isinstance(spec, Recipe):
        return spec
    if isinstance(spec, os.PathLike):
        return lang.load(os.fspath(spec))
    if isinstance(spec, bytes):
        return lang.parse(spec)
    if not isinstance(spec, str):
        raise RecipeError(f"a recipe must be text, a path or a Recipe, not {type(spec).__name__}")
    if _looks_like_path(spec) or _one_word(spec):
        return lang.load(_recipe_file(spec.strip()))
    return lang.parse(spec)


def _looks_like_path(spec: str) -> bool:
    return "\n" not in spec and ";" not in spec and spec.strip().endswith(
        (".prune", ".pql", ".yaml", ".yml"))


def _one_word(spec: str) -> bool:
    """No recipe is a single word: such a string names a file or a bundled recipe."""
    return re.fullmatch(r"[\w.\-/\\]+", spec.strip()) is not None


def _recipe_file(name: str) -> str:
    """A recipe file: the path as given, else a bundled recipe of that name (``vgg16``,
    ``vgg16.yaml``) unless the name has a folder in it."""
    if os.path.exists(name):
        return name
    found = resources.spec_path(name) if os.path.basename(name) == name else None
    if found is not None:
        return found
    if _looks_like_path(name):
        return name                      # lang.load says the file is missing
    from pruneql.lang.select import closest

    near = closest(name, list(resources.spec_files()))
    raise RecipeError(f"no recipe file or bundled recipe named '{name}'",
                      hint=(f"did you mean {', '.join(near)}? " if near else "")
                      + "`pruneql specs` lists the bundled recipes; a file needs its "
                        ".prune or .yaml extension")


def spec_entries() -> list:
    """The bundled recipes: ``[{"name", "file", "model", "summary"}]``.

    >>> next(e for e in spec_entries() if e["name"] == "resnet56-a")["model"]
    'resnet56_cifar'
    """
    entries = []
    for name, path in resources.spec_files().items():
        stmt = lang.load(path).first(lang.ast.ModelStmt)
        entries.append({"name": name, "file": os.path.basename(path),
                        "model": stmt.name if stmt else None,
                        "summary": resources.spec_summary(path)})
    return entries


@dataclass
class Result:
    """What ``compile`` returns: the pruned module, its report, and a way to save it."""

    module: nn.Module
    report: Report
    example_inputs: tuple
    recipe: Recipe
    model_path: str | None = None
    written: dict | None = None       # what emit wrote: {"path", "format", ...}
    plan: dict | None = None          # the replayable plan (:mod:`pruneql.replay`)
    unused_state: dict = field(default_factory=dict, repr=False)  # tensors forward never uses

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

    def save_plan(self, path, force: bool = False) -> str:
        """Write :attr:`plan` as JSON (atomically; an existing file only with ``force``):
        the decisions ``pruneql.apply`` replays on your own model class. Returns the path."""
        return write_plan(self.plan, path, force)

    def state_dict(self) -> dict:
        """The pruned weights under the compiled model's own names: what a model rebuilt
        with ``pruneql.apply(result.plan, model)`` loads with ``load_state_dict``."""
        blockers = self.plan.get("blockers") if self.plan else None
        if blockers:
            raise replay.ReplayError(
                "the pruned weights do not fit the model's own class: "
                + "; ".join(f"{b['where']}: {b['why']}" for b in blockers[:2])
                + (f" (and {len(blockers) - 2} more)" if len(blockers) > 2 else ""),
                hint="use the pruned module itself (result.module) or the emitted model")
        state = {**self.unused_state}
        renames = self.plan["renames"] if self.plan else {}
        for key, value in self.module.state_dict().items():
            mine = renames.get(key, key)
            if mine is not None:
                state[mine] = value
        return state


def output_for(spec: str, recipe: Recipe, fmt: str | None = None) -> str:
    """Where ``run`` writes when no ``-o`` is given: the recipe's ``emit`` path, else
    ``<spec>-pruned.pt`` (``.pt2`` for ``emit export`` or ``fmt="export"``).

    >>> output_for("specs/vgg16.prune", parse("model vgg16_cifar"), "onnx")
    'vgg16-pruned.onnx'
    """
    emit = recipe.first(Emit)
    if emit is not None and emit.path:
        return emit.path
    stem = os.path.splitext(os.path.basename(str(spec)))[0]
    fmt = fmt or (emit.format if emit is not None else "torchscript")
    return f"{stem}-pruned{SUFFIXES[fmt]}"


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
    plan_out = options.pop("plan_out", None)
    if plan_out is not None:
        check_target(plan_out, options.get("force", False))
    ctx = passes.run(passes.COMPILE, _context(spec, model, example_inputs, **options), hooks)
    result = Result(module=ctx.pruned, report=ctx.report, example_inputs=ctx.example_inputs,
                    recipe=ctx.recipe, model_path=ctx.options.model_path, written=ctx.written,
                    plan=replay.plan_of(ctx), unused_state=_unused_state(ctx))
    if plan_out is not None:
        result.save_plan(plan_out, force=options.get("force", False))
    return result


def _unused_state(ctx: Context) -> dict:
    """The model's tensors the traced graph does not hold (modules forward never calls),
    as copies: the caller's tensors are never handed back to be changed."""
    graph = {id(t) for t in ctx.gm.state_dict(keep_vars=True).values()}
    return {k: t.detach().clone() for k, t in ctx.model.state_dict(keep_vars=True).items()
            if id(t) not in graph and k not in ctx.gm.state_dict()}


def write_plan(plan: dict, path, force: bool = False) -> str:
    """Write a plan (``Result.plan``) as JSON, atomically; returns the path written."""
    from pruneql.passes.emit import write_atomic

    target = check_target(path, force)
    return write_atomic(target, (replay.dumps(plan) + "\n").encode())


def apply(plan, model: nn.Module, state_dict: dict | None = None) -> nn.Module:
    """Rebuild your own model at a plan's widths (see :func:`pruneql.replay.apply`).

    >>> import json, pruneql
    >>> plan = compile("model vgg16_cifar; prune conv1 by l1 keep 0.5").plan
    >>> from pruneql import zoo
    >>> apply(json.loads(replay.dumps(plan)), zoo.build("vgg16_cifar")).conv1
    Conv2d(3, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    """
    return replay.apply(plan, model, state_dict)


def plan(spec, model=None, example_inputs=None, hooks: tuple = (), **options) -> Report:
    """The same decisions and Report as ``compile``, without touching any weights.

    >>> plan("model resnet56_cifar; prune conv1 in layer1 by l1 keep 0.5").before["flops"]
    125485696
    """
    ctx = _context(spec, model, example_inputs, **options)
    ctx.dry_run = True
    return passes.run(passes.PLAN, ctx, hooks).report


def sensitivity(spec, model=None, example_inputs=None, fractions=None, hooks: tuple = (),
                **options) -> list:
    """Li et al.'s sensitivity analysis: every group the recipe selects, pruned alone at
    each fraction (smallest-L1 filters, or the statement's weight criterion), with the
    validation accuracy. Needs data (the recipe's ``data`` or ``data=``).

    Returns rows ``{"group", "layer", "index", "fraction", "kept", "channels", "accuracy"}``.
    """
    ctx = _context(spec, model, example_inputs, fractions=tuple(fractions or ()) or None,
                   **options)
    ctx.dry_run = True
    return passes.run(passes.SENSITIVITY, ctx, hooks).sweep


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


def demo(output: str, force: bool = False, progress: Progress | None = None,
         hooks: tuple = (), model: str = "digits_cnn") -> dict:
    """`pruneql demo`: a bundled model pruned end to end (see :mod:`pruneql.demo`)."""
    from pruneql.demo import demo as run_demo

    return run_demo(output, force=force, progress=progress, hooks=hooks, model=model)


def zoo_entries() -> list:
    """The built-in models: ``[{"name", "input", "description", "paper"}]``."""
    from pruneql import zoo

    return [{"name": e.name, "input": list(e.input_shape), "description": e.description,
             "paper": e.paper} for e in (zoo.entry(n) for n in zoo.names())]
