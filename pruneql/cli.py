"""The ``pruneql`` command: thin typer commands over the Python API."""
from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pruneql import api, zoo
from pruneql.errors import PruneQLError
from pruneql.passes.emit import check_target
from pruneql.report import Report

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="PruneQL: declarative structured pruning for PyTorch.")


class _Consoles:
    """Consoles made on first use, so COLUMNS and the terminal of each invocation apply."""

    @property
    def out(self) -> Console:
        return Console(highlight=False)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False, soft_wrap=True)


_io = _Consoles()

Spec = Annotated[str, typer.Argument(help="recipe: a .prune or .yaml file")]
ModelPath = Annotated[Optional[str], typer.Argument(
    help="weights (state_dict/checkpoint) for the recipe's model; omit to use the zoo "
         "model's default initialisation")]
ModelName = Annotated[Optional[str], typer.Option(
    "--model", help="architecture: zoo name or pkg.module:factory (overrides the recipe)")]
InputShape = Annotated[Optional[str], typer.Option(
    "--input", help="example input shape without batch, e.g. 3x32x32")]
TrustPickle = Annotated[bool, typer.Option(
    "--trust-pickle", help="allow MODEL to be a pickled whole module (runs its code)")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def _shape(text: str | None) -> tuple | None:
    if text is None:
        return None
    try:
        shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise typer.BadParameter(f"'{text}' is not a shape like 3x32x32", param_hint="--input")
    return shape


def _fail(exc: PruneQLError, as_json: bool) -> None:
    if os.environ.get("PRUNEQL_DEBUG"):
        raise exc
    if as_json:
        _io.out.print_json(json.dumps(exc.to_dict()))
    _io.err.print(str(exc), markup=False)
    raise typer.Exit(1)


def _options(model_name, input_shape, trust_pickle) -> dict:
    return {"model_name": model_name, "input_shape": _shape(input_shape),
            "trust_pickle": trust_pickle}


@app.command()
def plan(spec: Spec, model: ModelPath = None, model_name: ModelName = None,
         input_shape: InputShape = None, trust_pickle: TrustPickle = False,
         as_json: AsJson = False,
         groups: Annotated[bool, typer.Option("--groups", help="list every group's members")]
         = False) -> None:
    """Dry run: the resolved groups and FLOPs/params before → after. Nothing is written."""
    options = _options(model_name, input_shape, trust_pickle)
    try:
        report = api.plan(spec, model, **options)
    except PruneQLError as exc:
        _fail(exc, as_json)
    if as_json:
        _io.out.print_json(json.dumps(report.to_dict()))
        return
    _print_report(report, all_groups=groups)


@app.command()
def run(spec: Spec, model: ModelPath = None,
        output: Annotated[Optional[str], typer.Option("-o", "--output", help=(
            "where to write the pruned model (.pt: TorchScript, .pt2: torch.export); "
            "default: the recipe's `emit` path, else <spec>-pruned.pt"))] = None,
        force: Annotated[bool, typer.Option("--force", help="replace an existing output")]
        = False,
        no_verify: Annotated[bool, typer.Option("--no-verify", help="skip the masked "
                                                "equivalence check")] = False,
        model_name: ModelName = None, input_shape: InputShape = None,
        trust_pickle: TrustPickle = False, as_json: AsJson = False) -> None:
    """Compile a recipe against a model: prune, verify, and write the smaller model."""
    options = _options(model_name, input_shape, trust_pickle)
    try:
        recipe = api.load_recipe(spec)
        target = output or _default_output(spec, recipe)
        check_target(target, force, inputs=(model,))
        result = api.compile(recipe, model, verify=not no_verify, **options)
        written = result.save(target, force=force)
    except PruneQLError as exc:
        _fail(exc, as_json)
    if as_json:
        _io.out.print_json(json.dumps({**result.report.to_dict(), "output": written}))
        return
    _print_report(result.report, all_groups=False)
    _io.out.print(f"wrote {written}")


def _default_output(spec: str, recipe) -> str:
    emit = recipe.first(api.Emit)
    if emit is not None and emit.path:
        return emit.path
    stem = os.path.splitext(os.path.basename(spec))[0]
    suffix = ".pt2" if emit is not None and emit.format == "export" else ".pt"
    return f"{stem}-pruned{suffix}"


@app.command("zoo")
def zoo_list(as_json: AsJson = False) -> None:
    """List the built-in models."""
    entries = [zoo.entry(n) for n in zoo.names()]
    if as_json:
        _io.out.print_json(json.dumps([{"name": e.name, "input": list(e.input_shape),
                                    "description": e.description, "paper": e.paper}
                                   for e in entries]))
        return
    table = Table("model", "input", "description", "paper")
    for e in entries:
        table.add_row(e.name, "x".join(map(str, e.input_shape)), e.description, e.paper)
    _io.out.print(table)


def _print_report(report: Report, all_groups: bool) -> None:
    summary = Table("", "before", "after", "reduction", title=f"{report.model} "
                    f"(input {'x'.join(map(str, report.input_shape))})")
    for key, label in (("flops", "FLOPs (MACs)"), ("params", "params")):
        summary.add_row(label, f"{report.before[key]:,}", f"{report.after[key]:,}",
                        f"{100 * report.reduction(key):.1f}%")
    _io.out.print(summary)
    rows = [g for g in report.groups if all_groups or g["selected"] or g["skipped_line"]]
    if rows:
        _io.out.print(_groups_table(rows, all_groups))
    if report.verify:
        _io.out.print(f"verify: masked equivalence passed (max relative error "
                  f"{report.verify['max_rel_error']:.1e})")


def _groups_table(rows: list, members: bool) -> Table:
    columns = ["group", "layers", "channels", "criterion", "line", "status"]
    table = Table(*columns, title="groups" if members else "pruned groups")
    for g in rows:
        names = g["members"] if members else g["producers"]
        shown = ", ".join(names[:6]) + (f" … (+{len(names) - 6})" if len(names) > 6 else "")
        ch = g["channels"]
        table.add_row(str(g["id"]), shown, f"{ch['before']} → {ch['after']}",
                      g["criterion"] or "", str(g["line"] or ""), _status(g))
    return table


def _status(group: dict) -> str:
    if group["frozen"]:
        return f"frozen: {group['frozen']}"
    if group["skipped_line"]:
        return f"skipped (line {group['skipped_line']})"
    if group["selected"]:
        return group["amount"]
    return "prunable" if group["prunable"] else "single channel"


def main() -> None:
    """Entry point of the console script and ``python -m pruneql``."""
    app(prog_name="pruneql")


if __name__ == "__main__":
    sys.exit(main())
