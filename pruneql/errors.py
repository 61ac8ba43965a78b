"""One root error class for everything a user can cause.

Every error carries a message, optionally the recipe span it points at and a hint.
``str(err)`` renders the whole thing the way the CLI prints it::

    error: unknown criterion 'l3'
      --> recipe:1:20
       |
     1 | prune conv1 by l3 keep 0.5;
       |                ^^
    hint: one of activation, ensemble, l1, l2, random, taylor
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of recipe source: 1-based line and column, end column exclusive."""

    line: int
    column: int
    end_column: int | None = None
    text: str = ""          # the whole source line, for the caret excerpt
    path: str = "recipe"

    def excerpt(self) -> str:
        width = max(1, (self.end_column or self.column + 1) - self.column)
        width = min(width, max(1, len(self.text) - self.column + 1))
        gutter = " " * len(str(self.line))
        return (f"  --> {self.path}:{self.line}:{self.column}\n"
                f" {gutter} |\n"
                f" {self.line} | {self.text}\n"
                f" {gutter} | {' ' * (self.column - 1)}{'^' * width}")


class PruneQLError(Exception):
    """Root of every error PruneQL raises on purpose."""

    stage = "error"

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint

    def __reduce__(self):         # pickled whole (torchrun broadcasts errors to every rank)
        return (type(self), (self.message, self.span, self.hint))

    def __str__(self) -> str:
        parts = [f"error: {self.message}"]
        if self.span is not None:
            parts.append(self.span.excerpt())
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)

    def to_dict(self) -> dict:
        span = self.span
        return {"error": self.message, "stage": self.stage, "hint": self.hint,
                "line": span.line if span else None, "column": span.column if span else None}


class RecipeError(PruneQLError):
    """The recipe does not parse, or says something meaningless."""

    stage = "recipe"


class NotImplementedStatement(RecipeError):
    """A statement or option that parses but whose pass is not built yet."""


class TrustError(RecipeError):
    """The recipe names code (a model factory, a data function) the user did not trust."""


class ModelError(PruneQLError):
    """The model cannot be found, loaded or built."""

    stage = "model"


class TraceError(PruneQLError):
    """torch.fx cannot trace the model, or shape propagation fails."""

    stage = "trace"


class PlanError(PruneQLError):
    """Selectors, amounts or budgets cannot be honoured on this model."""

    stage = "plan"


class VerifyError(PruneQLError):
    """The pruned model is not equivalent to the masked original."""

    stage = "verify"


class DataError(PruneQLError):
    """The data source cannot be found, read or turned into batches."""

    stage = "data"


class TrainError(PruneQLError):
    """Training (fine-tuning, recovery steps) diverged or cannot run."""

    stage = "train"


class DistributedError(PruneQLError):
    """The ranks of a distributed run disagree."""

    stage = "distributed"


class EmitError(PruneQLError):
    """The pruned model cannot be written where asked."""

    stage = "emit"


class InternalError(PruneQLError):
    """Something PruneQL should have handled: a bug, reported with the pass it hit."""

    stage = "internal"


def first_line(exc: BaseException, limit: int | None = None, lines: int = 1) -> str:
    """How an error quotes an exception: the first ``lines`` lines of its message (joined,
    cut at ``limit`` characters), or its class name when it has none.

    >>> first_line(ValueError("bad shape\\nmore detail")), first_line(KeyError())
    ('bad shape', 'KeyError')
    """
    text = " ".join(str(exc).strip().splitlines()[:lines])[:limit]
    return text or type(exc).__name__
