"""Progress on a terminal: what the CLI hands the compiler as ``progress`` and as a pass hook.

A spinner per pass with its name and elapsed time (``Hook.before``/``after``), replaced by
a bar when the pass reports steps through ``ctx.progress`` (``start``/``advance``/``end``:
sensitivity trials with an ETA, ``iterate`` rounds, epochs with the loss). Passes shorter
than a second leave no line behind.

>>> import io
>>> from rich.console import Console
>>> live = Live(Console(file=io.StringIO(), force_terminal=True))
>>> with live:
...     live.start("trials", 2)
...     live.advance("trials", fraction="0.5")
...     live.advance("trials")
...     live.end("trials")
>>> task = live.rich.tasks[0]
>>> task.description, task.completed, task.fields["count"], task.fields["info"]
('trials', 2, '2/2', 'fraction 0.5')
"""
from __future__ import annotations

import os

from rich.console import Console

from pruneql.passes import Hook
from pruneql.training import Progress

__all__ = ["Live"]


class Live(Progress, Hook):
    """Progress for a person at a terminal, on stderr: a spinner per pass with its name and
    elapsed time (a pass hook), replaced by a bar when the pass reports steps through
    ``ctx.progress`` (trials, rounds, epochs with the loss, the latency table)."""

    def __init__(self, console: Console):
        from rich.progress import (BarColumn, Progress as Rich, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn)

        plain = {"markup": False}
        self.rich = Rich(SpinnerColumn(), TextColumn("{task.description}", **plain),
                         BarColumn(), TextColumn("{task.fields[count]}", **plain),
                         TextColumn("{task.fields[info]}", **plain), TimeElapsedColumn(),
                         TextColumn("{task.fields[eta]}", **plain),
                         console=console, transient=False)
        self.tasks: dict = {}
        self.passes: dict = {}
        self.current = None

    def __enter__(self) -> "Live":
        self.rich.start()
        return self

    def __exit__(self, *exc) -> None:
        self.rich.stop()

    # -- the pass hook
    def before(self, name: str, ctx) -> None:
        label = _pass_label(name, ctx)
        if name in self.passes:
            self.rich.reset(self.passes[name], total=None, description=label, visible=True)
        else:
            self.passes[name] = self.rich.add_task(label, total=None, count="", info="",
                                                   eta="")
        self.current = self.passes[name]

    def after(self, name: str, ctx, seconds: float) -> None:
        task = self.passes[name]
        self.rich.update(task, total=1, completed=1, visible=self._shown(task, seconds))
        self.current = None

    def _shown(self, task, seconds: float) -> bool:
        """A pass stays listed when it took a second or more and no bar replaced it."""
        return seconds >= 1.0 and self.rich.tasks[self._index(task)].visible

    def _index(self, task) -> int:
        return next(i for i, t in enumerate(self.rich.tasks) if t.id == task)

    # -- steps the passes report
    def start(self, task: str, total: int | None = None) -> None:
        if self.current is not None:
            self.rich.update(self.current, visible=False)
        self.tasks[task] = self.rich.add_task(task, total=total, count="", info="", eta="")
        self._fields(task)

    def advance(self, task: str, steps: int = 1, **info) -> None:
        if task not in self.tasks:
            self.start(task)
        text = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in info.items())
        self.rich.update(self.tasks[task], advance=steps, **({"info": text} if text else {}))
        self._fields(task)

    def end(self, task: str, **info) -> None:
        if task not in self.tasks:
            return
        self.advance(task, 0, **info)
        found = self.rich.tasks[self._index(self.tasks.pop(task))]
        self.rich.update(found.id, total=found.completed or 1, completed=found.completed or 1,
                         eta="")

    def _fields(self, task: str) -> None:
        found = self.rich.tasks[self._index(self.tasks[task])]
        count = f"{found.completed:g}/{found.total:g}" if found.total else \
            (f"{found.completed:g}" if found.completed else "")
        remaining = found.time_remaining
        eta = f"ETA {int(remaining) // 60}:{int(remaining) % 60:02d}" \
            if found.total and remaining is not None and not found.finished else ""
        self.rich.update(found.id, count=count, eta=eta)


_PASS_LABELS = {"validate": "checking the recipe", "load": "loading the model",
                "trace": "tracing the model", "modularize": "functional layers",
                "channels": "channel analysis", "data": "loading the data",
                "resolve": "resolving selectors", "sensitivity": "sensitivity (skip sensitive)",
                "sweep": "sensitivity sweep", "score": "scoring channels",
                "allocate": "allocating", "recover": "recovery steps",
                "rewrite": "rewriting", "inplace": "in-place residuals",
                "verify": "verifying", "finetune": "fine-tuning", "measure": "measuring",
                "emit": "writing the model and reloading it"}


def _pass_label(name: str, ctx) -> str:
    label = _PASS_LABELS.get(name, name)
    if name == "score":
        criteria = sorted({sel.statement.criterion.name for sel in ctx.live()})
        label += f" ({', '.join(criteria)})" if criteria else ""
    elif name == "emit" and ctx.options.output:
        label = f"writing {os.path.basename(ctx.options.output)} and reloading it"
    return label
