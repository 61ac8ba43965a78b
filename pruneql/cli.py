"""The ``pruneql`` command: thin typer commands over the Python API."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pruneql import api
from pruneql.api import Progress, PruneQLError, Report

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
TrustCode = Annotated[bool, typer.Option(
    "--trust-code", help="import the code the recipe names (model pkg.mod:fn, data python "
                         "...); without it only names also given on the command line run")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]
DataSource = Annotated[Optional[str], typer.Option(
    "--data", help="data for data-driven passes: digits, npz:PATH, cifar10:DIR, "
                   "imagefolder:DIR or python:pkg.mod:fn (overrides the recipe's `data`)")]


class _Bars(Progress):
    """Rich progress bars on stderr, one per task (fine-tuning epochs...)."""

    def __init__(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Rich,
                                   TextColumn, TimeElapsedColumn)
        self.rich = Rich(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                         console=_io.err, transient=False)
        self.tasks: dict = {}

    def start(self, task, total=None):
        if not self.tasks:
            self.rich.start()
        self.tasks[task] = self.rich.add_task(task, total=total, info="")

    def advance(self, task, steps=1, **info):
        text = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in info.items())
        self.rich.update(self.tasks[task], advance=steps, **({"info": text} if text else {}))

    def end(self, task, **info):
        self.advance(task, 0, **info)
        self.tasks.pop(task)
        if not self.tasks:
            self.rich.stop()


def _progress(as_json: bool) -> Progress:
    """Bars for people on a terminal; nothing for --json, pipes, or ranks other than 0."""
    rank, _ = api.init_distributed()
    return _Bars() if rank == 0 and not as_json and _io.err.is_terminal else Progress()


def _leader() -> bool:
    """Under torchrun only rank 0 prints and writes."""
    return api.init_distributed()[0] == 0


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


def _options(model_name, input_shape, trust_pickle, data=None, trust_code=False) -> dict:
    return {"model_name": model_name, "input_shape": _shape(input_shape),
            "trust_pickle": trust_pickle, "data": data, "trust_code": trust_code}


@app.command()
def plan(spec: Spec, model: ModelPath = None, model_name: ModelName = None,
         input_shape: InputShape = None, trust_pickle: TrustPickle = False,
         trust_code: TrustCode = False, data: DataSource = None, as_json: AsJson = False,
         groups: Annotated[bool, typer.Option("--groups", help="list every group's members")]
         = False) -> None:
    """Dry run: the resolved groups and FLOPs/params before → after. Nothing is written."""
    options = _options(model_name, input_shape, trust_pickle, data, trust_code)
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
        trust_pickle: TrustPickle = False, trust_code: TrustCode = False,
        data: DataSource = None, as_json: AsJson = False) -> None:
    """Compile a recipe against a model: prune, verify, fine-tune, write the smaller model."""
    options = _options(model_name, input_shape, trust_pickle, data, trust_code)
    leader = _leader()
    try:
        recipe = api.load_recipe(spec)
        target = output or api.output_for(spec, recipe)
        result = api.compile(recipe, model, verify=not no_verify, force=force,
                             output=target if leader else None,
                             progress=_progress(as_json), **options)
    except PruneQLError as exc:
        _fail(exc, as_json)
    if not leader:
        return
    written = result.written["path"]
    if as_json:
        _io.out.print_json(json.dumps({**result.report.to_dict(), "output": written}))
        return
    _print_report(result.report, all_groups=False)
    _io.out.print(f"wrote {written}")


@app.command()
def demo(output: Annotated[Optional[str], typer.Option(
            "-o", "--output", help="where to write the pruned TorchScript model "
                                   "(default: pruneql-demo.pt in a new temporary folder)")] = None,
         force: Annotated[bool, typer.Option("--force", help="replace an existing output")]
         = False, as_json: AsJson = False) -> None:
    """Prune the bundled digits CNN end to end (Taylor, fine-tuning), no download."""
    target = output or os.path.join(tempfile.mkdtemp(prefix="pruneql-demo-"), "pruneql-demo.pt")
    try:
        report = api.demo(target, force=force, progress=_progress(as_json))
    except PruneQLError as exc:
        _fail(exc, as_json)
    if as_json:
        _io.out.print_json(json.dumps(report))
        return
    _io.out.print(_demo_table(report))
    _io.out.print(f"verify: masked equivalence passed (max relative error "
                  f"{report['verify']['max_rel_error']:.1e}); wrote {report['output']}")


def _demo_table(report: dict) -> Table:
    table = Table("digits_cnn", "before", "after", "change", title="pruneql demo")
    acc = report["accuracy"]
    table.add_row("val accuracy", f"{acc['before']:.2%}",
                  f"{acc['finetuned']:.2%} (pruned, not fine-tuned: {acc['pruned']:.2%})",
                  f"{100 * (acc['finetuned'] - acc['before']):+.2f} pt")
    for key, label in (("flops", "FLOPs (MACs)"), ("params", "params")):
        b, a = report["before"][key], report["after"][key]
        table.add_row(label, f"{b:,}", f"{a:,}", f"{100 * (a / b - 1):+.1f}%")
    for batch, ms in report["latency_ms"].items():
        table.add_row(f"CPU latency, {batch.replace('batch', 'batch ')}",
                      f"{ms['before']:.3f} ms", f"{ms['after']:.3f} ms",
                      f"{ms['before'] / ms['after']:.2f}× faster")
    return table


@app.command("sensitivity")
def sensitivity_cmd(spec: Spec, model: ModelPath = None,
                    output: Annotated[str, typer.Option(
                        "-o", "--output", help="output prefix: writes PREFIX.csv, "
                                               "PREFIX.json and PREFIX.png")] = "sensitivity",
                    fractions: Annotated[str, typer.Option(
                        "--fractions", help="comma-separated fractions pruned")]
                    = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
                    force: Annotated[bool, typer.Option("--force", help="replace outputs")]
                    = False,
                    model_name: ModelName = None, input_shape: InputShape = None,
                    trust_pickle: TrustPickle = False, trust_code: TrustCode = False,
                    data: DataSource = None, as_json: AsJson = False) -> None:
    """Li et al.'s sensitivity analysis: each selected layer pruned alone at a sweep of
    fractions; writes a CSV/JSON table and a PNG plot."""
    try:
        steps = [float(f) for f in fractions.split(",")]
    except ValueError:
        raise typer.BadParameter(f"'{fractions}' is not a list like 0.1,0.5", param_hint="--fractions")
    leader = _leader()
    try:
        if leader:
            for ext in ("csv", "json", "png"):
                api.check_target(f"{output}.{ext}", force)
        rows = api.sensitivity(spec, model, fractions=steps,
                               **_options(model_name, input_shape, trust_pickle, data,
                                          trust_code))
        paths = api.write_sensitivity(rows, output, force) if leader else []
    except PruneQLError as exc:
        _fail(exc, as_json)
    if not leader:
        return
    if as_json:
        _io.out.print_json(json.dumps({"rows": rows, "outputs": paths}))
        return
    _io.out.print(f"{len({r['layer'] for r in rows})} layers × {len(steps)} fractions; "
                  f"wrote {', '.join(paths)}")


@app.command("zoo")
def zoo_list(as_json: AsJson = False) -> None:
    """List the built-in models."""
    entries = api.zoo_entries()
    if as_json:
        _io.out.print_json(json.dumps(entries))
        return
    table = Table("model", "input", "description", "paper")
    for e in entries:
        table.add_row(e["name"], "x".join(map(str, e["input"])), e["description"], e["paper"])
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
    if report.target:
        _io.out.print(_target_line(report.target))
    if report.accuracy:
        _io.out.print("accuracy: " + ", ".join(f"{k} {v:.2%}" for k, v in report.accuracy.items()))
    if report.verify:
        _io.out.print(f"verify: masked equivalence passed (max relative error "
                      f"{report.verify['max_rel_error']:.1e})")


def _target_line(target: dict) -> str:
    line = (f"target {target['metric']} {target['value']:.1%}: allocation reaches "
            f"{target['achieved']:.1%} of the baseline")
    if target["metric"] == "latency":
        line += f" (predicted {target['predicted_ms']:.2f} ms of {target['before_ms']:.2f} ms"
        measured = target.get("measured")
        line += (f"; measured {measured['after_ms']:.2f} ms of {measured['before_ms']:.2f} ms, "
                 f"{measured['ratio']:.1%})" if measured else ")")
    return line


def _groups_table(rows: list, members: bool) -> Table:
    columns = ["group", "layers", "channels", "criterion", "line", "status"]
    table = Table(*columns, title="groups" if members else "pruned groups")
    for g in rows:
        names = g["members"] if members else g["producers"]
        shown = ", ".join(names[:6]) + (f" … (+{len(names) - 6})" if len(names) > 6 else "")
        ch, units = g["channels"], g["units"]
        width = f"{ch['before']} → {ch['after']}"
        if units != ch:       # a residual stream spanning stages, or whole conv groups
            width += f" ({units['before']} → {units['after']} units)"
        table.add_row(str(g["id"]), shown, width,
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
