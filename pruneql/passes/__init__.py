"""The compiler: passes in order. Each module holds one public function named like the
module, ``pass(ctx) -> ctx``; a pipeline is a plain tuple of them, and ``COMPILE`` below is
every step a ``pruneql run`` takes, emit included.

``Repeat`` is the one loop: the allocation rounds of gradual pruning (``iterate``), of
greedy scoring (one group per round) and of budgets met step by step; a one-shot cut is a
single round. ``run`` takes hooks that see every pass (timing, invariant checks).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from pruneql.errors import InternalError, PruneQLError
from pruneql.passes.allocate import allocate
from pruneql.passes.channels import channels
from pruneql.passes.data import data
from pruneql.passes.emit import emit
from pruneql.passes.finetune import finetune
from pruneql.passes.inplace import inplace
from pruneql.passes.load import load
from pruneql.passes.measure import measure
from pruneql.passes.modularize import modularize
from pruneql.passes.recover import recover
from pruneql.passes.resolve import resolve
from pruneql.passes.rewrite import rewrite
from pruneql.passes.score import score
from pruneql.passes.sensitivity import sensitivity
from pruneql.passes.sweep import sweep
from pruneql.passes.trace import trace
from pruneql.passes.validate import validate
from pruneql.passes.verify import verify


@dataclass(frozen=True)
class Repeat:
    """Run ``steps`` in order, again and again, until the cut says it is done."""

    steps: tuple

    @property
    def __name__(self) -> str:      # how the runner names it in messages
        return "repeat(" + " → ".join(s.__name__ for s in self.steps) + ")"

    def done(self, ctx) -> bool:
        return ctx.cut is not None and ctx.cut.done


DECIDE = Repeat((score, allocate, recover))
ANALYSE = (validate, load, trace, modularize, channels, data, resolve)
PLAN = ANALYSE + (sensitivity, DECIDE, measure)
COMPILE = ANALYSE + (sensitivity, DECIDE, rewrite, inplace, verify, finetune, measure, emit)
SENSITIVITY = ANALYSE + (sweep,)
_LIMIT = 100_000     # rounds; a loop that never ends is a bug, not a long recipe


class Hook:
    """Sees every pass: ``before(name, ctx)`` and ``after(name, ctx, seconds)``."""

    def before(self, name: str, ctx) -> None:
        """Called before pass ``name`` runs."""

    def after(self, name: str, ctx, seconds: float) -> None:
        """Called after pass ``name`` returned ``ctx``, which took ``seconds``."""


class Timings(Hook):
    """Seconds per pass, summed over repeats: ``{"trace": 0.05, ...}``."""

    def __init__(self):
        self.seconds: dict = {}

    def after(self, name, ctx, seconds):
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


class Lint(Hook):
    """Checks the fx graphs after every pass (``graph.lint()``): a pass that leaves a
    malformed graph is caught where it happened."""

    def after(self, name, ctx, seconds):
        for gm in (ctx.gm, ctx.pruned):
            if gm is not None and hasattr(gm, "graph"):
                gm.graph.lint()


def default_hooks() -> tuple:
    """``PRUNEQL_LINT=1`` adds :class:`Lint` (the test suite sets it)."""
    return (Lint(),) if os.environ.get("PRUNEQL_LINT") else ()


def steps_of(pipeline: tuple) -> list:
    """Every pass of a pipeline, in order, the loop's included."""
    found = []
    for step in pipeline:
        found += list(step.steps) if isinstance(step, Repeat) else [step]
    return found


def run(pipeline: tuple, ctx, hooks: tuple = ()):
    """Run passes in order, after every pass's precondition (``step.precondition(ctx)``,
    such as emit's check that its destination is writable) has been checked. PruneQL
    errors pass through; anything else is a bug, reported with the pass it happened in and
    the passes before it."""
    hooks = tuple(hooks) + default_hooks()
    for step in steps_of(pipeline):
        check = getattr(step, "precondition", None)
        if check is not None:
            check(ctx)
    done: list = []
    for step in pipeline:
        if isinstance(step, Repeat):
            ctx = _repeat(step, ctx, hooks, done)
        else:
            ctx = _one(step, ctx, hooks, done)
    return ctx


def _repeat(loop: Repeat, ctx, hooks: tuple, done: list):
    for _ in range(_LIMIT):
        for step in loop.steps:
            ctx = _one(step, ctx, hooks, done)
        if loop.done(ctx):
            return ctx
    raise InternalError(f"{loop.__name__} did not finish in {_LIMIT} rounds",
                        hint="this is a PruneQL bug; please report it with the recipe")


def _one(step, ctx, hooks: tuple, done: list):
    name = step.__name__
    for hook in hooks:
        hook.before(name, ctx)
    start = time.perf_counter()
    try:
        ctx = step(ctx)
    except PruneQLError:
        raise
    except Exception as exc:
        after = f" (after {', '.join(dict.fromkeys(done))})" if done else ""
        raise InternalError(f"internal error in pass '{name}'{after}: "
                            f"{type(exc).__name__}: {exc}",
                            hint="this is a PruneQL bug; set PRUNEQL_DEBUG=1 for the "
                                 "traceback and please report it") from exc
    for hook in hooks:
        hook.after(name, ctx, time.perf_counter() - start)
    done.append(name)
    return ctx
