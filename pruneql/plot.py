"""Plots of analyses; matplotlib is an optional dependency (`pip install pruneql[plot]`)."""
from __future__ import annotations

import csv
import io
import json



def sensitivity_table(rows: list) -> tuple:
    """(CSV text, JSON text) of sensitivity rows."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["group"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), json.dumps(rows, indent=1)


def sensitivity_png(rows: list) -> bytes | None:
    """Accuracy vs. fraction pruned, one line per layer (Li et al.'s Figure 2); None when
    matplotlib is not installed."""
    try:   # imported here: plotting is optional and matplotlib is slow to import
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for layer in dict.fromkeys(r["layer"] for r in rows):
        mine = [r for r in rows if r["layer"] == layer]
        label = f"{layer} (#{mine[0]['index']})" if mine[0]["index"] else layer
        ax.plot([0.0] + [r["fraction"] for r in mine],
                [mine[0]["baseline"]] + [r["accuracy"] for r in mine], marker=".", label=label)
    ax.set_xlabel("fraction of filters pruned away")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2 if len(ax.lines) > 12 else 1, loc="lower left")
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
