"""The criteria: one registry, torch-free, that the language and the scorers both read.

Each criterion is declared once here, with its arguments (type and bounds as a check,
default, one-line doc), whether it needs data, and a one-line description. The language
validates ``by NAME(ARGS)`` against it; scorers attach their implementation with
``register`` and the compiler finds it with ``implementation``:

>>> spec("taylor").needs_data, spec("taylor").argument("batches").type
(True, 'int')
>>> [name for name in NAMES if not spec(name).needs_data]
['l1', 'l2', 'random']

An implementation registers with the decorator (once per name; see ``Registry``)::

    @register("l1")
    def l1(module, in_mask=None): ...

and ``implementation("l1")`` returns it, or raises NotImplementedStatement.
"""
from __future__ import annotations

from dataclasses import dataclass

from pruneql.lang.registry import Registry
from pruneql.lang.values import Check, Flag, Real, Share, Whole, Word

__all__ = ["Argument", "CRITERIA", "CriterionSpec", "NAMES", "data_criteria",
           "implementation", "register", "spec"]


@dataclass(frozen=True)
class Argument:
    """One argument of a criterion: ``check`` holds its type and bounds."""

    name: str
    check: Check
    default: object
    doc: str

    @property
    def type(self) -> str:
        """``int``, ``float``, ``fraction``, ``bool`` or ``choice``."""
        return self.check.type


@dataclass(frozen=True)
class CriterionSpec:
    """A criterion as the language knows it."""

    name: str
    description: str
    needs_data: bool
    arguments: tuple = ()

    def argument(self, name: str) -> Argument | None:
        """The argument called ``name``, or None."""
        return next((a for a in self.arguments if a.name == name), None)

    @property
    def argument_names(self) -> tuple:
        """The argument names, sorted."""
        return tuple(sorted(a.name for a in self.arguments))

    def defaults(self) -> dict:
        """``{argument: default}``; None means the implementation decides (see the doc).

        >>> spec("ensemble").defaults()
        {'samples': None, 'keep': 0.9, 'batches': 4, 'ridge': 0.0}
        """
        return {a.name: a.default for a in self.arguments}


_BATCHES = Argument("batches", Whole(), None, "how many batches to score on (default: all)")
_RATE = Real(strict=False, words="a non-negative number")
_DECLARED = (
    CriterionSpec("activation", "mean or spread of the activation a channel feeds", True, (
        Argument("stat", Word(("mean", "std")), "mean",
                 "the statistic of the activation: mean or std"),
        _BATCHES)),
    CriterionSpec("ensemble", "linear fit of the loss over random channel masks "
                              "(Sandor et al. 2020)", True, (
        Argument("samples", Whole(), None,
                 "how many random masks to sample per group (default: 16 per live "
                 "channel, at least 64)"),
        Argument("keep", Share(True, True, "a fraction ", "e.g. 0.7 or 70%"), 0.9,
                 "the chance that a mask keeps a channel"),
        Argument("batches", Whole(), 4, "how many batches measure each mask's loss"),
        Argument("ridge", _RATE, 0.0,
                 "ridge penalty of the fit, >= 0 (0: plain least squares)"))),
    CriterionSpec("l1", "L1 norm of a channel's filters (Li et al. 2017)", False),
    CriterionSpec("l2", "L2 norm of a channel's filters", False),
    CriterionSpec("oracle", "change of the loss when the channel alone is removed", True, (
        _BATCHES,
        Argument("signed", Flag(), False,
                 "true ranks by the signed loss change, false by its size"))),
    CriterionSpec("random", "uniform random scores (a baseline)", False, (
        Argument("seed", Whole(minimum=0), None,
                 "the seed of the scores, >= 0 (default: the run's seed)"),)),
    CriterionSpec("taylor", "first-order Taylor estimate of the loss change "
                            "(Molchanov et al. 2017)", True, (
        _BATCHES,
        Argument("flops_reg", _RATE, 0.0,
                 "FLOPs regulariser, >= 0: lowers the scores of costly channels"))),
)
CRITERIA: Registry[CriterionSpec] = Registry("criterion", _DECLARED)
NAMES = CRITERIA.names
register = CRITERIA.register
implementation = CRITERIA.implementation


def spec(name: str) -> CriterionSpec:
    """The declaration of criterion ``name`` (KeyError if there is none).

    >>> spec("random").argument("seed").default is None
    True
    """
    return CRITERIA[name]


def data_criteria() -> tuple:
    """Names of the criteria that run the model on data.

    >>> data_criteria()
    ('activation', 'ensemble', 'oracle', 'taylor')
    """
    return tuple(name for name in NAMES if CRITERIA[name].needs_data)
