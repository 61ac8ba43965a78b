"""How the CLI shows reports: rich tables and lines, nothing printed here.

Layer names are never cut: a group's names are listed one per line, the prefix they share
written once (``layer1.{0.conv3, 0.downsample.0}``), and columns fold instead of
ellipsising.

>>> short_names(["layer1.0.conv3", "layer1.0.downsample.0", "layer1.1.conv3"])
'layer1.{0.conv3, 0.downsample.0, 1.conv3}'
>>> short_names(["conv1", "layer1.0.conv2"])
'conv1, layer1.0.conv2'
"""
from __future__ import annotations

from rich.table import Table

_SHOWN = 8       # names listed per group before "(+N more)"
_PLAIN_METRICS = ("perplexity", "loss")


def shape_text(shape) -> str:
    """``[1, 3, 32, 32]`` → ``3x32x32``: the input as ``--input`` and ``input`` write it.

    >>> shape_text([1, 3, 32, 32])
    '3x32x32'
    """
    return "x".join(str(d) for d in list(shape)[1:])


def short_names(names: list) -> str:
    """Names with their common dotted prefix written once."""
    if len(names) < 2:
        return ", ".join(names)
    parts = [n.split(".") for n in names]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    if common == 0:
        return ", ".join(names)
    prefix = ".".join(parts[0][:common])
    return f"{prefix}.{{{', '.join('.'.join(p[common:]) for p in parts)}}}"


def names_cell(names: list) -> str:
    shown = short_names(list(names[:_SHOWN]))
    return shown + (f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")


def metric_text(metric: str, value: float) -> str:
    return f"{value:.4g}" if metric in _PLAIN_METRICS else f"{value:.2%}"


def report_lines(report, all_groups: bool) -> list:
    """What ``plan`` and ``run`` print: the summary, the groups, and one line each for
    the origin of the weights, the front-end, evaluation, budget and verification."""
    lines = [summary_table(report), details_line(report)]
    rows = [g for g in report.groups if all_groups or g["selected"] or g["skipped_line"]]
    if rows:
        lines.append(groups_table(rows, all_groups))
    if report.target:
        lines.append(target_line(report.target))
    if report.accuracy:
        lines.append(accuracy_line(report))
    if report.verify:
        lines.append(f"verify: masked equivalence passed (max relative error "
                     f"{report.verify['max_rel_error']:.1e})")
    return lines


def summary_table(report) -> Table:
    table = Table("", "before", "after", "reduction",
                  title=f"{report.model} (input {shape_text(report.input_shape)})")
    for key, label in (("flops", "FLOPs (MACs)"), ("params", "params")):
        table.add_row(label, f"{report.before[key]:,}", f"{report.after[key]:,}",
                      f"{100 * report.reduction(key):.1f}%")
    return table


def details_line(report) -> str:
    """Where the weights came from and which tracer read the model."""
    trace = {"symbolic": "torch.fx symbolic trace", "export": "torch.export"}.get(
        report.frontend, report.frontend or "-")
    return f"weights: {report.weights or '-'} · front-end: {trace}"


def accuracy_line(report) -> str:
    ev = report.evaluation or {}
    metric = ev.get("metric", "accuracy")
    values = ", ".join(f"{k} {metric_text(metric, v)}" for k, v in report.accuracy.items())
    where = f" ({ev['task']}, {metric} on the {ev['split']} split" if ev else ""
    if ev.get("optimistic"):
        where += f"; {', '.join(ev['selected_on_val'])} chose on it too: optimistic"
    return f"{metric}: {values}{where}{')' if ev else ''}"


def groups_table(rows: list, members: bool) -> Table:
    table = Table("group", "layers", "channels", "criterion", "line", "status",
                  title="groups" if members else "pruned groups")
    table.columns[1].overflow = "fold"
    table.columns[5].overflow = "fold"
    for g in rows:
        ch, units = g["channels"], g["units"]
        width = f"{ch['before']} → {ch['after']}"
        if units != ch:       # a residual stream spanning stages, or whole conv groups
            width += f" ({units['before']} → {units['after']} units)"
        table.add_row(str(g["id"]), names_cell(g["members"] if members else g["producers"]),
                      width, g["criterion"] or "", str(g["line"] or ""), status(g))
    return table


def status(group: dict) -> str:
    if group["frozen"]:
        return f"frozen: {group['frozen']}"
    if group["skipped_line"]:
        return f"skipped (line {group['skipped_line']})"
    if group["selected"]:
        return group["amount"]
    return "prunable" if group["prunable"] else "single channel"


def target_line(target: dict) -> str:
    line = (f"target {target['metric']} {target['value']:.1%}: allocation reaches "
            f"{target['achieved']:.1%} of the baseline")
    if target["metric"] == "latency":
        line += f" (predicted {target['predicted_ms']:.2f} ms of {target['before_ms']:.2f} ms"
        measured = target.get("measured")
        line += (f"; measured {measured['after_ms']:.2f} ms of {measured['before_ms']:.2f} ms, "
                 f"{measured['ratio']:.1%})" if measured else ")")
    return line


def demo_table(report: dict) -> Table:
    table = Table(report.get("model", "digits_cnn"), "before", "after", "change",
                  title="pruneql demo")
    acc = report["accuracy"]
    metric = report.get("evaluation", {}).get("metric", "accuracy").replace("_", " ")
    table.add_row(f"val {metric}", f"{acc['before']:.2%}",
                  f"{acc['finetuned']:.2%} (pruned, not fine-tuned: {acc['pruned']:.2%})",
                  f"{100 * (acc['finetuned'] - acc['before']):+.2f} pt")
    evaluation = report.get("evaluation", {})
    if "perplexity" in evaluation.get("before", {}):
        ppl = {k: evaluation[k]["perplexity"] for k in ("before", "pruned", "finetuned")}
        table.add_row("val perplexity", f"{ppl['before']:.2f}",
                      f"{ppl['finetuned']:.2f} (pruned, not fine-tuned: {ppl['pruned']:.2f})",
                      f"{ppl['finetuned'] / ppl['before']:.2f}×")
    for key, label in (("flops", "FLOPs (MACs)"), ("params", "params")):
        b, a = report["before"][key], report["after"][key]
        table.add_row(label, f"{b:,}", f"{a:,}", f"{100 * (a / b - 1):+.1f}%")
    for batch, ms in report["latency_ms"].items():
        table.add_row(f"CPU latency, {batch.replace('batch', 'batch ')}",
                      f"{ms['before']:.3f} ms", f"{ms['after']:.3f} ms",
                      f"{ms['before'] / ms['after']:.2f}× faster")
    return table


def zoo_table(entries: list) -> Table:
    table = Table("model", "input", "description", "paper")
    for e in entries:
        table.add_row(e["name"], "x".join(map(str, e["input"])), e["description"], e["paper"])
    return table


def specs_table(entries: list) -> Table:
    table = Table("name", "configuration", "model", title="bundled recipes (pruneql plan NAME)")
    for e in entries:
        table.add_row(e["name"], e["summary"], e["model"] or "")
    return table
