"""The recipe AST: frozen dataclasses, each keeping the span of its source.

Both surface syntaxes (text ``.prune`` and YAML) produce these nodes. Spans are
excluded from equality so a YAML recipe and its text twin compare equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from pruneql.errors import Span

# ---- helpers ---------------------------------------------------------------------------

def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


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

CRITERIA = ("activation", "ensemble", "l1", "l2", "oracle", "random", "taylor")


@dataclass(frozen=True)
class Criterion:
    """``l1``, ``taylor(batches=16, flops_reg=1e-3)``; args are sorted (name, value) pairs."""

    name: str
    args: tuple = ()
    span: Span | None = _span()

    def arg(self, name: str, default=None):
        return dict(self.args).get(name, default)


@dataclass(frozen=True)
class Amount:
    """How many channels a group keeps.

    kind ``fraction``: value is the kept fraction in (0, 1] (``keep 0.66``, ``keep 66%``,
    ``remove 34%`` all become this); kind ``channels``: value is an absolute kept count.
    """

    kind: str
    value: Union[float, int]
    span: Span | None = _span()

    def kept(self, n: int) -> int:
        """Kept channels out of ``n``: floor(n * keep), at least 1 (Li et al.)."""
        if self.kind == "channels":
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
    """``data SOURCE ["path"] [batch N] [val FRACTION];``."""

    source: str
    path: str | None = None
    batch: int | None = None
    val: float | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Iterate:
    """``iterate N steps [finetune K steps];``."""

    steps: int
    finetune_steps: int | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Finetune:
    """``finetune epochs N [lr X] [momentum X] [weight_decay X] [optimizer sgd|adam];``."""

    epochs: int
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Emit:
    """``emit torchscript|export|onnx ["path"];``."""

    format: str
    path: str | None = None
    span: Span | None = _span()


Statement = Union[ModelStmt, InputStmt, StrategyStmt, Prune, Skip, Target, Data, Iterate,
                  Finetune, Emit]


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
