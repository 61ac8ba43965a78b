"""Tables and plots of analyses; matplotlib is optional (`pip install "pruneql[plot]"`):
without it the CSV and JSON are still written.

The sensitivity plot follows Li et al.'s Figure 2: one panel per stage — layers grouped by
the first component of their module path (``layer1``, ``layer2``...) — each line a layer,
the metric against the fraction of its filters pruned away.

>>> rows = [{"layer": "layer1.0.conv1", "index": 2}, {"layer": "layer2.0.conv1", "index": 8},
...         {"layer": "conv1", "index": 1}, {"layer": "fc", "index": None}]
>>> list(stages(rows))
['layer1', 'layer2', 'other layers']
"""
from __future__ import annotations

import csv
import io
import json
import math
import textwrap

_OTHER = "other layers"


def sensitivity_table(rows: list) -> tuple:
    """(CSV text, JSON text) of sensitivity rows; every row names its criterion and metric."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["group"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), json.dumps(rows, indent=1)


def stages(rows: list) -> dict:
    """Stage name -> the layers in it, in order: layers grouped by the first component of
    a dotted module path; top-level layers (a stem, a classifier) share one panel, or are
    the only panel when no layer is nested (VGG's conv1 … conv13)."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    found: dict = {}
    for layer in layers:
        head, dot, _ = layer.partition(".")
        found.setdefault(head if dot else _OTHER, []).append(layer)
    if list(found) == [_OTHER]:
        return {"all layers": layers}
    other = found.pop(_OTHER, None)
    return {**found, **({_OTHER: other} if other else {})}


def sensitivity_png(rows: list) -> bytes | None:
    """The plot as PNG bytes; None when matplotlib is not installed."""
    try:   # imported here: plotting is optional and matplotlib is slow to import
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = stages(rows)
    cols = min(3, len(panels))
    fig, axes = plt.subplots(math.ceil(len(panels) / cols), cols, squeeze=False, sharey=True,
                             figsize=(4.6 * cols, 3.9 * math.ceil(len(panels) / cols)), dpi=110)
    for ax, (stage, layers) in zip(axes.flat, panels.items()):
        _panel(ax, stage, [[r for r in rows if r["layer"] == layer] for layer in layers],
               prefix=f"{stage}." if stage not in ("all layers", _OTHER) else "")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(textwrap.fill(_title(rows), int(11 * 4.6 * cols)), fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _title(rows: list) -> str:
    criteria = ", ".join(sorted({r.get("criterion", "?") for r in rows}))
    metric = rows[0].get("metric", "metric") if rows else "metric"
    return (f"Sensitivity: each layer's filters pruned alone, ranked by {criteria}; "
            f"{metric} on the validation split")


def _panel(ax, stage: str, lines: list, prefix: str) -> None:
    metric = lines[0][0].get("metric", "accuracy")
    for mine in lines:
        first = mine[0]
        name = first["layer"].removeprefix(prefix)
        label = f"{name} (#{first['index']})" if first.get("index") else name
        ax.plot([0.0] + [r["fraction"] for r in mine],
                [first["baseline"]] + [r[metric] for r in mine], marker=".", label=label)
    ax.set_title(stage, fontsize=9)
    ax.set_xlabel("fraction of filters pruned away", fontsize=8)
    ax.set_ylabel(metric, fontsize=8)
    ax.set_xlim(0, 1)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2 if len(lines) > 8 else 1, loc="lower left",
              title=prefix.rstrip(".") or None, title_fontsize=6, framealpha=0.7)
