"""The ``pruneql`` command: thin typer commands over the Python API.

Terminal output goes through :mod:`pruneql.clirender` (tables) and :class:`Live` (progress
on stderr, only for a person at a terminal); ``--json`` prints exactly one JSON object on
stdout, errors included.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from pruneql import __version__, api
from pruneql.api import Progress, PruneQLError
from pruneql.clirender import demo_table, report_lines, specs_table, zoo_table
from pruneql.terminal import Live
from pruneql.errors import InternalError, RecipeError
from pruneql.passes.load import RANDOM_INIT


def _click_class(name: str) -> type:
    """A click exception class, from typer's own copy of click where it vendors one."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_UsageError, _ClickException = _click_class("UsageError"), _click_class("ClickException")


class _Group(TyperGroup):
    """A usage error (an unknown option, a bad number) under ``--json`` is one JSON object
    on stdout too, like every other error."""

    def parse_args(self, ctx, args):
        ctx.meta["pruneql.json"] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _UsageError as exc:
            if not ctx.meta.get("pruneql.json"):
                raise
            _print_json({"error": exc.format_message(), "stage": "usage", "hint": None,
                         "line": None, "column": None})
            raise typer.Exit(2) from None


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="PruneQL: declarative structured pruning for PyTorch.")


class _Consoles:
    """Consoles made on first use, so COLUMNS and the terminal of each invocation apply."""

    @property
    def out(self) -> Console:
        return Console(highlight=False, markup=False)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


_io = _Consoles()


def _show(*items) -> None:
    """Tables at the terminal's width; text as it is (no markup, no hard wrapping, so
    paths stay whole)."""
    for item in items:
        _io.out.print(item, markup=False, soft_wrap=isinstance(item, str))


def _warn(text: str) -> None:
    _io.err.print(text, markup=False, soft_wrap=True)

Spec = Annotated[str, typer.Argument(
    help="recipe: a .prune or .yaml file, or the name of a bundled one (`pruneql specs`)")]
ModelPath = Annotated[Optional[str], typer.Argument(
    help="weights (state_dict/checkpoint) for the recipe's model; omit to prune the zoo "
         "model's default (random) initialisation")]
ModelName = Annotated[Optional[str], typer.Option(
    "--model", help="architecture: zoo name or pkg.module:factory (overrides the recipe)")]
InputShape = Annotated[Optional[str], typer.Option(
    "--input", help="example input shape without batch, e.g. 3x32x32")]
TrustPickle = Annotated[bool, typer.Option(
    "--trust-pickle", help="allow MODEL to be a pickled whole module (runs its code)")]
TrustCode = Annotated[bool, typer.Option(
    "--trust-code", help="import the code the recipe names (model pkg.mod:fn, data python "
                         "...); without it only names also given on the command line run")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]
DataSource = Annotated[Optional[str], typer.Option(
    "--data", help="data for data-driven passes: digits, npz:PATH, cifar10:DIR, "
                   "imagefolder:DIR or python:pkg.mod:fn (overrides the recipe's `data`)")]
Seed = Annotated[int, typer.Option(
    "--seed", help="seed of criteria, shuffling and the example input (the data split has "
                   "its own: `data ... seed N`)")]
class TraceMode(str, Enum):
    auto = "auto"
    symbolic = "symbolic"
    export = "export"


class Format(str, Enum):
    torchscript = "torchscript"
    export = "export"
    onnx = "onnx"


Trace = Annotated[Optional[TraceMode], typer.Option(
    "--trace", help="front-end: symbolic (torch.fx), export (torch.export) or auto (symbolic, then "
         "export); overrides the recipe's `trace`")]
Force = Annotated[bool, typer.Option("--force", help="replace existing outputs")]
Groups = Annotated[bool, typer.Option("--groups", help="list every channel group, frozen "
                                                       "ones with the reason")]


def _version(value: bool) -> None:
    if value:
        _show(f"pruneql {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")]
        = False) -> None:
    """PruneQL: declarative structured pruning for PyTorch."""


# ---- progress --------------------------------------------------------------------------------

@contextlib.contextmanager
def _live(as_json: bool):
    """``(progress, hooks)``: a :class:`Live` display for a person at a terminal; nothing
    for --json, pipes and redirected output, or ranks other than 0 under torchrun."""
    rank, _ = api.init_distributed()
    out, err = _io.out, _io.err
    if rank != 0 or as_json or not (out.is_terminal and err.is_terminal):
        yield Progress(), ()
        return
    with Live(err) as live:
        yield live, (live,)


# ---- errors ----------------------------------------------------------------------------------

def _print_json(data) -> None:
    """Plain JSON, never coloured or wrapped, even on a terminal."""
    out = _io.out.file
    out.write(json.dumps(data, indent=2) + "\n")
    out.flush()


def _fail(exc: PruneQLError, as_json: bool) -> None:
    if os.environ.get("PRUNEQL_DEBUG"):
        raise exc
    if as_json:
        _print_json(exc.to_dict())
    _warn(str(exc))
    raise typer.Exit(1)


@contextlib.contextmanager
def _guard(as_json: bool):
    """Every failure a user sees is one screen (or one JSON object), never a traceback."""
    try:
        yield
    except PruneQLError as exc:
        _fail(exc, as_json)
    except KeyboardInterrupt:
        _warn("interrupted; nothing was written")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, _ClickException):
        raise
    except Exception as exc:
        if os.environ.get("PRUNEQL_DEBUG"):
            raise
        _fail(InternalError(f"internal error: {type(exc).__name__}: {exc}",
                            hint="this is a PruneQL bug; set PRUNEQL_DEBUG=1 for the "
                                 "traceback and please report it"), as_json)


def _bad(as_json: bool, message: str, option: str) -> None:
    """A bad option value: usage error, exit 2 (one JSON object under --json)."""
    if as_json:
        _print_json({"error": f"Invalid value for {option}: {message}", "stage": "usage",
                     "hint": None, "line": None, "column": None})
        raise typer.Exit(2)
    raise typer.BadParameter(message, param_hint=option)


def _leader() -> bool:
    """Under torchrun only rank 0 prints and writes."""
    return api.init_distributed()[0] == 0


def _shape(text: str | None, as_json: bool) -> tuple | None:
    if text is None:
        return None
    try:
        shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        _bad(as_json, f"'{text}' is not a shape like 3x32x32", "--input")
    return shape


def _options(as_json, model_name, input_shape, trust_pickle, data=None, trust_code=False,
             seed=0, trace=None) -> dict:
    return {"model_name": model_name, "input_shape": _shape(input_shape, as_json),
            "trust_pickle": trust_pickle, "data": data, "trust_code": trust_code,
            "seed": seed, "trace": trace.value if trace is not None else None}


def _warn_random(report) -> None:
    if report.weights == RANDOM_INIT:
        _warn(f"warning: no model file: pruned a random initialisation of {report.model} "
              f"(its seeded default); the structure and counts hold, the channels chosen "
              f"do not mean anything")


# ---- commands --------------------------------------------------------------------------------

@app.command()
def plan(spec: Spec, model: ModelPath = None, model_name: ModelName = None,
         input_shape: InputShape = None, trust_pickle: TrustPickle = False,
         trust_code: TrustCode = False, data: DataSource = None, seed: Seed = 0,
         trace: Trace = None, as_json: AsJson = False, groups: Groups = False) -> None:
    """Dry run: the resolved groups and FLOPs/params before → after. Nothing is written."""
    options = _options(as_json, model_name, input_shape, trust_pickle, data, trust_code,
                       seed, trace)
    with _guard(as_json):
        with _live(as_json) as (progress, hooks):
            report = api.plan(spec, model, hooks=hooks, progress=progress, **options)
    if as_json:
        _print_json(report.to_dict())
        return
    _show(*report_lines(report, all_groups=groups))


@app.command()
def run(spec: Spec, model: ModelPath = None,
        output: Annotated[Optional[str], typer.Option("-o", "--output", help=(
            "where to write the pruned model (.pt: TorchScript, .pt2: torch.export, .onnx: "
            "ONNX); default: the recipe's `emit` path, else <spec>-pruned.pt"))] = None,
        fmt: Annotated[Optional[Format], typer.Option(
            "--format", help="output format (default: from the extension)")] = None,
        plan_out: Annotated[Optional[str], typer.Option(
            "--plan-out", help="also write the decisions as a JSON plan that "
                               "pruneql.apply(plan, model) replays on your own model class")]
        = None,
        force: Force = False,
        no_verify: Annotated[bool, typer.Option("--no-verify", help="skip the masked "
                                                "equivalence check")] = False,
        model_name: ModelName = None, input_shape: InputShape = None,
        trust_pickle: TrustPickle = False, trust_code: TrustCode = False,
        data: DataSource = None, seed: Seed = 0, trace: Trace = None, groups: Groups = False,
        as_json: AsJson = False) -> None:
    """Compile a recipe against a model: prune, verify, fine-tune, write the smaller model."""
    options = _options(as_json, model_name, input_shape, trust_pickle, data, trust_code,
                       seed, trace)
    fmt = fmt.value if fmt is not None else None
    leader = _leader()
    with _guard(as_json):
        recipe = api.load_recipe(spec)
        target = output or api.output_for(spec, recipe, fmt)
        _distinct(target, plan_out)
        with _live(as_json) as (progress, hooks):
            result = api.compile(recipe, model, verify=not no_verify, force=force,
                                 output=target if leader else None, format=fmt,
                                 plan_out=plan_out if leader else None,
                                 progress=progress, hooks=hooks, **options)
    if not leader:
        return
    _warn_random(result.report)
    written = result.written["path"]
    if as_json:
        _print_json({**result.report.to_dict(), "output": written,
                     **({"plan": os.path.abspath(plan_out)} if plan_out else {})})
        return
    _show(*report_lines(result.report, all_groups=groups),
          f"wrote {written}" + (f" and the plan {plan_out}" if plan_out else ""))
    if plan_out and result.plan["blockers"]:
        _warn(f"warning: the plan cannot be replayed on the model's own code "
              f"({result.plan['blockers'][0]['why']}); use the written model")


def _distinct(output: str, plan_out: str | None) -> None:
    if plan_out is not None and os.path.abspath(plan_out) == os.path.abspath(output):
        raise RecipeError(f"--plan-out and the model output are the same file "
                              f"'{output}'", hint="name the plan something like plan.json")


@app.command()
def demo(output: Annotated[Optional[str], typer.Option(
            "-o", "--output", help="where to write the pruned TorchScript model "
                                   "(default: pruneql-demo.pt in a new temporary folder)")] = None,
         force: Force = False, as_json: AsJson = False,
         model: Annotated[str, typer.Option(
             "--model", help="digits_cnn (a trained CNN: Taylor, half the channels) or "
                             "llama_tiny (a small Llama trained first on the bundled "
                             "corpus: heads, MLP and hidden width)")] = "digits_cnn") -> None:
    """Prune a bundled model end to end (verified, fine-tuned, measured), no download."""
    target = output or os.path.join(tempfile.mkdtemp(prefix="pruneql-demo-"), "pruneql-demo.pt")
    with _guard(as_json):
        with _live(as_json) as (progress, hooks):
            report = api.demo(target, force=force, progress=progress, hooks=hooks,
                              model=model)
    if as_json:
        _print_json(report)
        return
    _show(demo_table(report), f"verify: masked equivalence passed (max relative error "
                              f"{report['verify']['max_rel_error']:.1e}); wrote {report['output']}")


@app.command("sensitivity")
def sensitivity_cmd(spec: Spec, model: ModelPath = None,
                    output: Annotated[str, typer.Option(
                        "-o", "--output", help="output prefix: writes PREFIX.csv, "
                                               "PREFIX.json and PREFIX.png")] = "sensitivity",
                    fractions: Annotated[str, typer.Option(
                        "--fractions", help="comma-separated fractions pruned")]
                    = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
                    force: Force = False,
                    model_name: ModelName = None, input_shape: InputShape = None,
                    trust_pickle: TrustPickle = False, trust_code: TrustCode = False,
                    data: DataSource = None, seed: Seed = 0, trace: Trace = None,
                    as_json: AsJson = False) -> None:
    """Li et al.'s sensitivity analysis: each selected layer pruned alone at a sweep of
    fractions; writes a CSV/JSON table and a PNG plot (one panel per stage)."""
    steps = _fractions(fractions, as_json)
    options = _options(as_json, model_name, input_shape, trust_pickle, data, trust_code,
                       seed, trace)
    leader = _leader()
    with _guard(as_json):
        if leader:
            for ext in ("csv", "json", "png"):
                api.check_target(f"{output}.{ext}", force)
        with _live(as_json) as (progress, hooks):
            rows = api.sensitivity(spec, model, fractions=steps, progress=progress,
                                   hooks=hooks, **options)
        paths = api.write_sensitivity(rows, output, force) if leader else []
    if not leader:
        return
    if as_json:
        _print_json({"rows": rows, "outputs": paths})
        return
    _show(_sensitivity_line(rows, steps, paths))


def _fractions(text: str, as_json: bool) -> list:
    try:
        steps = [float(f) for f in text.split(",")]
    except ValueError:
        steps = []
    if not steps or not all(0 < f < 1 for f in steps):
        _bad(as_json, f"'{text}' is not a list of fractions like 0.1,0.5", "--fractions")
    return steps


def _sensitivity_line(rows: list, steps: list, paths: list) -> str:
    criteria = ", ".join(sorted({r["criterion"] for r in rows})) or "-"
    metric = rows[0]["metric"] if rows else "metric"
    line = (f"{len({r['layer'] for r in rows})} layers × {len(steps)} fractions, channels "
            f"ranked by {criteria}, {metric} on the validation split; wrote {', '.join(paths)}")
    if not any(p.endswith(".png") for p in paths):
        line += ' (no plot: matplotlib is not installed; pip install "pruneql[plot]")'
    return line


@app.command("zoo")
def zoo_list(as_json: AsJson = False) -> None:
    """List the built-in models."""
    entries = api.zoo_entries()
    if as_json:
        _print_json(entries)
        return
    _show(zoo_table(entries))


@app.command("specs")
def specs_list(as_json: AsJson = False) -> None:
    """List the bundled recipes (`pruneql plan NAME` runs one)."""
    with _guard(as_json):
        entries = api.spec_entries()
    if as_json:
        _print_json(entries)
        return
    _show(specs_table(entries))


def main() -> None:
    """Entry point of the console script and ``python -m pruneql``."""
    app(prog_name="pruneql")


if __name__ == "__main__":
    sys.exit(main())
