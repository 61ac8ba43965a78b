"""Write the pruned model: TorchScript (default) or a torch.export program (``.pt2``)."""
from __future__ import annotations

import io
import os
import tempfile
import warnings

import torch

from pruneql.errors import EmitError
from pruneql.lang import ast

FORMATS = ("torchscript", "export")


def format_for(path: str, fmt: str | None = None) -> str:
    """The output format: explicit, else ``.pt2`` → export, anything else → TorchScript."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise EmitError(f"unknown output format '{fmt}'", hint=f"one of {', '.join(FORMATS)}")
        return fmt
    return "export" if str(path).endswith(".pt2") else "torchscript"


def check_target(path: str, force: bool = False, inputs: tuple = ()) -> str:
    """Refuse an output path that would overwrite an input or an existing file."""
    path = os.path.abspath(os.fspath(path))
    for source in inputs:
        if source and os.path.exists(source) and os.path.exists(path) \
                and os.path.samefile(source, path):
            raise EmitError(f"refusing to overwrite the input '{source}' with the pruned model",
                            hint="choose another output path with -o")
    if os.path.isdir(path):
        raise EmitError(f"output '{path}' is a directory", hint="give a file name with -o")
    if os.path.exists(path) and not force:
        raise EmitError(f"output '{path}' already exists", hint="pass --force to replace it")
    if not os.path.isdir(os.path.dirname(path)):
        raise EmitError(f"directory '{os.path.dirname(path)}' does not exist",
                        hint="create it first or choose another output path")
    return path


def emit(ctx):
    """Write ``ctx.pruned`` to ``ctx.options.output`` (nothing when it is None); set
    ``ctx.written``. Its precondition, checked before the compile starts, is that the
    destination can be written without replacing an input."""
    if ctx.options.output is None or ctx.dry_run:
        return ctx
    path = write(ctx.pruned, ctx.example_inputs, ctx.options.output, ctx.options.format,
                 ctx.options.force, inputs=run_inputs(ctx))
    ctx.written = {"path": path, "format": format_for(path, ctx.options.format)}
    return ctx


def _destination(ctx) -> None:
    if ctx.options.output is not None and not ctx.dry_run:
        check_target(ctx.options.output, ctx.options.force, inputs=run_inputs(ctx))


emit.precondition = _destination


def run_inputs(ctx) -> tuple:
    """Files this run reads, which its output must never replace."""
    data = ctx.recipe.first(ast.Data)
    recipe = ctx.recipe.path if ctx.recipe.path.endswith(_RECIPE_SUFFIXES) else None
    return tuple(p for p in (ctx.options.model_path, recipe,
                             data.path if data is not None else None) if p)


_RECIPE_SUFFIXES = (".prune", ".pql", ".yaml", ".yml")


def write(module: torch.nn.Module, example_inputs: tuple, path: str, fmt: str | None = None,
          force: bool = False, inputs: tuple = ()) -> str:
    """Write ``module`` atomically to ``path``; returns the absolute path written."""
    path = check_target(path, force, inputs)
    fmt = format_for(path, fmt)
    # serialised in memory first: an archive written to a file records the file's name,
    # and a random temporary name would make two identical runs differ byte for byte
    buffer = io.BytesIO()
    try:
        if fmt == "export":
            torch.export.save(_exported(module, example_inputs), buffer)
        else:
            torch.jit.save(_scripted(module, example_inputs), buffer)
    except EmitError:
        raise
    except Exception as exc:
        raise EmitError(f"cannot serialise the pruned model as {fmt}: {exc}") from exc
    return write_atomic(path, buffer.getvalue())


def write_atomic(path: str, data: bytes) -> str:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = os.path.abspath(os.fspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pruneql-", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())    # mkstemp's 0600 is not what a user expects
        os.replace(tmp, path)
    except OSError as exc:
        raise EmitError(f"cannot write '{path}': {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _scripted(module, example_inputs):
    """TorchScript via scripting (keeps shapes dynamic), else tracing."""
    module = module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # TorchScript's deprecation notices
        try:
            return torch.jit.script(module)
        except Exception:
            with torch.no_grad():
                return torch.jit.trace(module, example_inputs, check_trace=False)


def _exported(module, example_inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.export.export(module.eval(), tuple(example_inputs))
        except Exception as exc:
            raise EmitError(f"torch.export cannot capture the pruned model: {exc}",
                            hint="emit TorchScript instead (an output path not ending in .pt2)"
                            ) from exc
