"""Write the pruned model, and prove the file: the last pass of ``pruneql run``.

The formats themselves (TorchScript, torch.export, ONNX; deterministic bytes; atomic
writes; the reload check) live in :mod:`pruneql.formats`.
"""
from __future__ import annotations

from pruneql.formats import (FORMATS, SUFFIXES, check_destination, check_target, format_for,
                             save, write_atomic)
from pruneql.lang import ast
from pruneql.passes.context import Context

__all__ = ["FORMATS", "SUFFIXES", "check_destination", "check_target", "emit", "format_for",
           "run_inputs", "write_atomic"]

_RECIPE_SUFFIXES = (".prune", ".pql", ".yaml", ".yml")


def emit(ctx: Context) -> Context:
    """Write ``ctx.pruned`` to ``ctx.options.output`` (nothing when it is None); set
    ``ctx.written``: ``{"path", "format", "size_bytes", "check"}``. The file is reloaded
    and compared with the pruned module on two batch sizes before it is put in place.

    Its precondition, checked before the compile starts (``emit.precondition``): the
    destination is writable, a regular file or absent, not an input of this run, and its
    extension fits the format."""
    if ctx.options.output is None or ctx.dry_run:
        return ctx
    ctx.written = save(ctx.pruned, ctx.example_inputs, ctx.options.output, _format(ctx),
                       ctx.options.force, inputs=run_inputs(ctx))
    return ctx


def _destination(ctx: Context) -> None:
    if ctx.options.output is not None and not ctx.dry_run:
        check_destination(ctx.options.output, ctx.options.force, inputs=run_inputs(ctx),
                          fmt=_format(ctx))


emit.precondition = _destination


def _format(ctx: Context) -> str | None:
    """The format asked for: the caller's, else the recipe's ``emit`` when its path is the
    one written; None lets the extension decide."""
    if ctx.options.format is not None:
        return ctx.options.format
    stmt = ctx.recipe.first(ast.Emit)
    if stmt is not None and (stmt.path is None or stmt.path == ctx.options.output):
        return stmt.format
    return None


def run_inputs(ctx: Context) -> tuple:
    """Files this run reads, which its output must never replace."""
    data = ctx.recipe.first(ast.Data)
    recipe = ctx.recipe.path if ctx.recipe.path.endswith(_RECIPE_SUFFIXES) else None
    return tuple(p for p in (ctx.options.model_path, recipe,
                             data.path if data is not None else None) if p)
