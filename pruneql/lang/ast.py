"""The recipe AST: frozen dataclasses, each keeping the span of its source.

Both surface syntaxes (text ``.prune`` and YAML) produce these nodes. Spans are
excluded from equality so a YAML recipe and its text twin compare equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from pruneql.errors import Span
from pruneql.lang import criteria as _criteria

# ---- helpers ---------------------------------------------------------------------------

def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


def _display(default):
    """A field that only says how the source spelled a value (for ``describe``)."""
    return field(default=default, compare=False, repr=False)


# ---- selectors and predicates ----------------------------------------------------------

@dataclass(frozen=True)
class Selector:
    """A module-name glob: ``conv*``, ``layer1.**.conv1``, ``/conv1``, ``conv{8..13}``."""

    pattern: str
    span: Span | None = _span()


ATTRIBUTES = ("kind", "in_channels", "out_channels", "kernel", "stride", "groups",
              "flops", "params", "index")


@dataclass(frozen=True)
class Compare:
    """``attr OP value``; OP is one of == != < <= > >=; value is int, float or str."""

    attr: str
    op: str
    value: Union[int, float, str]
    span: Span | None = _span()


@dataclass(frozen=True)
class InList:
    """``attr in [v, ...]`` or ``attr not in [v, ...]``."""

    attr: str
    values: tuple
    negate: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class And:
    left: "Predicate"
    right: "Predicate"
    span: Span | None = _span()


@dataclass(frozen=True)
class Or:
    left: "Predicate"
    right: "Predicate"
    span: Span | None = _span()


@dataclass(frozen=True)
class Not:
    operand: "Predicate"
    span: Span | None = _span()


Predicate = Union[Compare, InList, And, Or, Not]


# ---- criterion and amount ---------------------------------------------------------------

CRITERIA = _criteria.NAMES     # declared in pruneql.lang.criteria, with their arguments


@dataclass(frozen=True)
class Criterion:
    """``l1``, ``taylor(batches=16, flops_reg=1e-3)``; args are sorted (name, value) pairs."""

    name: str
    args: tuple = ()
    span: Span | None = _span()

    def arg(self, name: str, default=None):
        return dict(self.args).get(name, default)


AMOUNT_KINDS = ("fraction", "count")


@dataclass(frozen=True)
class Amount:
    """How much of a group stays, counted in ``unit`` (channels, heads or head_dims).

    kind ``fraction``: value is the kept fraction in (0, 1] (``keep 0.66``, ``keep 66%``,
    ``remove 34%`` all become this); kind ``count``: value is an absolute kept count
    (``keep 48 channels``, ``keep 6 heads``). ``verb`` and ``percent`` only record the
    spelling, for ``describe``; they take no part in equality.
    """

    kind: str
    value: Union[float, int]
    unit: str = "channels"
    span: Span | None = _span()
    verb: str = _display("keep")
    percent: bool = _display(False)

    def kept(self, n: int) -> int:
        """Kept units out of ``n``: floor(n * keep), at least 1 (Li et al.); a count as is.

        >>> Amount("fraction", 0.7).kept(64), Amount("count", 6, "heads").kept(12)
        (44, 6)
        """
        if self.kind == "count":
            return int(self.value)
        # a small epsilon so 64 * (1 - 0.3) = 44.8 and 16 * 0.5 = 8.0 floor as on paper
        return max(1, int(n * self.value + 1e-9))


# ---- statements -------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelStmt:
    """``model vgg16_cifar;`` or ``model pkg.module:factory;``."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class InputStmt:
    """``input 3x32x32;`` -- the example input's shape without the batch dimension."""

    shape: tuple
    span: Span | None = _span()


@dataclass(frozen=True)
class StrategyStmt:
    """``strategy independent|greedy;``."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Prune:
    """``prune SELECTORS [in SCOPE] [where PRED] by CRITERION AMOUNT [round N];``."""

    selectors: tuple
    criterion: Criterion
    amount: Amount
    scope: Selector | None = None
    where: Predicate | None = None
    round: int | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Skip:
    """``skip SELECTORS [in SCOPE] [where PRED];`` or ``skip sensitive [above X];``.

    For ``sensitive``, ``selectors`` is empty and ``threshold`` is a fraction (1% → 0.01).
    """

    selectors: tuple = ()
    scope: Selector | None = None
    where: Predicate | None = None
    sensitive: bool = False
    threshold: float | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Target:
    """``target flops|params|latency X;`` -- X is a fraction of the baseline."""

    metric: str
    value: float
    span: Span | None = _span()


@dataclass(frozen=True)
class Data:
    """``data SOURCE ["path"] [batch N] [val F] [test F] [seed N] [resize N] [normalize X];``.

    ``val`` and ``test`` are the fractions held out (together below 1), ``seed`` the seed of
    that split; ``resize`` and ``normalize`` (imagenet|none) are for ``imagefolder`` only.
    """

    source: str
    path: str | None = None
    batch: int | None = None
    val: float | None = None
    test: float | None = None
    seed: int | None = None
    resize: int | None = None
    normalize: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Iterate:
    """``iterate N steps [finetune K steps];`` (``steps`` = N), or Molchanov's loop
    ``iterate until target remove R per step [finetune K steps];`` (``until_target``,
    ``per_step`` = R, ``steps`` None)."""

    steps: int | None
    finetune_steps: int | None = None
    until_target: bool = False
    per_step: int | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Finetune:
    """``finetune epochs N [lr X] [momentum X] [weight_decay X] [optimizer sgd|adam]
    [select last|best];`` -- ``select`` None means the default, last."""

    epochs: int
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None
    select: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Emit:
    """``emit torchscript|export|onnx ["path"];``."""

    format: str
    path: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Task:
    """``task classification|segmentation|lm;`` or ``task python "pkg.mod:fn";`` -- the loss
    and metric of data-driven passes; ``function`` only (and always) for ``python``."""

    kind: str
    function: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class TraceStmt:
    """``trace auto|symbolic|export;`` -- the tracing front end."""

    mode: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Allow:
    """``allow inexact layernorm;`` -- opt in to something PruneQL refuses by default."""

    what: str
    span: Span | None = _span()


Statement = Union[ModelStmt, InputStmt, StrategyStmt, Prune, Skip, Target, Data, Iterate,
                  Finetune, Emit, Task, TraceStmt, Allow]


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: statements in source order, plus the source for error excerpts."""

    statements: tuple
    source: str = field(default="", compare=False, repr=False)
    path: str = field(default="recipe", compare=False, repr=False)

    def of(self, kind: type) -> tuple:
        """All statements of one kind, in source order."""
        return tuple(s for s in self.statements if isinstance(s, kind))

    def first(self, kind: type):
        found = self.of(kind)
        return found[0] if found else None
