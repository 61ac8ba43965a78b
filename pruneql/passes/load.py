"""Find the model: a module handed in, a zoo name, or ``pkg.mod:factory`` plus weights."""
from __future__ import annotations

import importlib
import os
import pickle

import torch
from torch import nn

from pruneql import zoo
from pruneql.errors import ModelError, first_line
from pruneql.graph.copying import share_copy, tensor_ids
from pruneql.lang import ast
from pruneql.passes.context import Context

RANDOM_INIT = "random init"


def load(ctx: Context) -> Context:
    """Set ``ctx.model``: PruneQL's own copy of the model, in eval mode (the mode it is
    traced, verified and deployed in), and ``ctx.example_inputs`` when none were given.

    A module handed in by the caller is copied structurally (its tensors are shared, not
    duplicated, and ``ctx.borrowed`` remembers them so training passes take their own);
    the caller's object, modes and attributes are never changed.
    """
    stmt = ctx.recipe.first(ast.ModelStmt)
    name = ctx.options.model_name or (stmt.name if stmt else None)
    if ctx.model is None:
        ctx.model, ctx.model_label, ctx.weights = _obtain(name, stmt, ctx.options)
    else:
        if not isinstance(ctx.model, nn.Module):
            raise ModelError(f"expected a torch.nn.Module, got {type(ctx.model).__name__}")
        ctx.model_label = ctx.model_label or name or type(ctx.model).__name__
        ctx.weights = "caller's module"
        ctx.borrowed = tensor_ids(ctx.model)
        ctx.model = _copy(ctx.model)
    ctx.model.eval()
    _no_cache(ctx.model)
    if ctx.example_inputs is None:
        ctx.example_inputs = (_example(ctx, name),)
    elif isinstance(ctx.example_inputs, torch.Tensor):
        ctx.example_inputs = (ctx.example_inputs,)
    return ctx


def _no_cache(model: nn.Module) -> None:
    """A Hugging Face model returns a key/value cache object by default, which no tracer
    can carry out of the graph; PruneQL's copy (never the caller's model) runs without."""
    config = getattr(model, "config", None)
    if getattr(config, "use_cache", False):
        config.use_cache = False


def _copy(model: nn.Module) -> nn.Module:
    try:
        return share_copy(model)
    except Exception as exc:
        raise ModelError(f"cannot copy the model ({type(model).__name__}): "
                         f"{first_line(exc, 300)}",
                         hint="PruneQL works on a copy so your module is never changed; "
                              "make it deep-copyable (copy.deepcopy) or pass its weights "
                              "with the recipe's `model`") from exc


def _obtain(name, stmt, options) -> tuple:
    """(module, label, where its weights came from)."""
    path = options.model_path
    if path is not None:
        loaded = _read(path, options.trust_pickle)
        if isinstance(loaded, nn.Module):
            return loaded, name or os.path.basename(path), path
        model = build(name, stmt, needed_for=path)
        _load_state(model, loaded, path, name)
        return model, name, path
    if name is None:
        raise ModelError("no model: the recipe has no 'model' statement and none was given",
                         hint="add `model vgg16_cifar;` (a zoo name or pkg.mod:factory), "
                              "pass --model, or pass a pickled module with --trust-pickle")
    return build(name, stmt), name, RANDOM_INIT


def build(name: str, stmt=None, needed_for: str | None = None) -> nn.Module:
    """Build a zoo model or call ``pkg.mod:factory``."""
    span = stmt.span if stmt is not None and stmt.name == name else None
    if name is None:
        raise ModelError(f"'{needed_for}' holds weights only, and no architecture is named",
                         hint="add `model NAME;` to the recipe or pass --model NAME")
    if ":" in name:
        return _factory(name, span)
    if name not in zoo.ZOO:
        from pruneql.lang.select import closest

        near = closest(name, zoo.names())
        raise ModelError(f"unknown model '{name}'", span=span,
                         hint=(f"did you mean {', '.join(near)}? " if near else "")
                         + "see `pruneql zoo`, or name a factory as pkg.module:function")
    return zoo.build(name)


def _factory(name: str, span) -> nn.Module:
    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import model factory '{name}': {exc}", span=span,
                         hint="the module must be importable (check PYTHONPATH) and define "
                              "the function") from exc
    try:
        model = factory()
    except SystemExit as exc:     # argparse-based builders exit on bad arguments
        raise ModelError(f"model factory '{name}' called sys.exit({exc.code!r}) instead of "
                         f"returning a model", span=span,
                         hint="the factory must return an nn.Module without parsing the "
                              "command line or exiting") from None
    except Exception as exc:
        raise ModelError(f"model factory '{name}' failed: {first_line(exc, 300)}",
                         span=span) from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"model factory '{name}' returned {type(model).__name__}, not a "
                         f"torch.nn.Module", span=span)
    return model


def _read(path: str, trust_pickle: bool):
    if not os.path.isfile(path):
        raise ModelError(f"model file '{path}' does not exist",
                         hint="check the path; without a model file the zoo model is built "
                              "with its default initialisation")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if trust_pickle or "Unsupported global" not in str(exc):
            raise ModelError(f"cannot read model file '{path}': {first_line(exc, 300)}",
                             hint="expected a file written by torch.save") from exc
        raise ModelError(f"model file '{path}' holds pickled Python objects (a whole module?), "
                         f"which are not loaded by default",
                         hint="save a state_dict instead, or pass --trust-pickle if you "
                              "trust the file (unpickling runs arbitrary code)") from exc
    except Exception as exc:
        raise ModelError(f"cannot read model file '{path}': {first_line(exc, 300)}",
                         hint="expected a file written by torch.save") from exc


def _load_state(model: nn.Module, loaded, path: str, name: str) -> None:
    state = loaded
    if isinstance(loaded, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                state = loaded[key]
                break
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ModelError(f"model file '{path}' holds {type(loaded).__name__}, not a state_dict",
                         hint="save with torch.save(model.state_dict(), path)")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel checkpoints
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"the weights in '{path}' do not fit model '{name}': "
                         f"{first_line(exc, 300, lines=2)}",
                         hint="check that the recipe's `model` is the architecture the "
                              "weights were trained with") from exc


def _example(ctx: Context, name: str | None) -> torch.Tensor:
    shape = ctx.options.input_shape
    stmt = ctx.recipe.first(ast.InputStmt)
    if shape is None and stmt is not None:
        shape = stmt.shape
    if name in zoo.ZOO:
        return zoo.example_input(name, batch=1, seed=ctx.options.seed, shape=shape)
    if shape is None:
        raise ModelError("no example input shape for tracing",
                         hint="add `input 3x32x32;` to the recipe or pass --input 3x32x32")
    generator = torch.Generator().manual_seed(ctx.options.seed)
    return torch.randn((1, *shape), generator=generator)
