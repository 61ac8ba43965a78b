"""Values as written, and the checks that turn them into AST values.

Both front ends hand the builder ``Raw`` values: the text of a token or of a YAML scalar,
where it is, and whether it was quoted. A *check* turns a Raw into a Python value or
raises a RecipeError worded one way everywhere, ``WHAT must be PHRASE, got TEXT``:

>>> Whole()(Raw("16"), "batch")
16
>>> Share(low_open=False, high_open=True)(Raw("10%"), "val")
0.1
>>> try:
...     Whole()(Raw("0"), "batch")
... except RecipeError as err:
...     print(err.message)
batch must be a positive integer, got 0

Numbers are read exactly (``decimal``), so ``remove 34%`` keeps 0.66, not 0.6599999.
"""
from __future__ import annotations

import decimal
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from pruneql.errors import RecipeError, Span
from pruneql.lang.grammar import terminal_regex
from pruneql.lang.source import quote
from pruneql.lang.suggest import did_you_mean

_MAX_EXPONENT = 30            # |numbers| stay below 1e31 (and above 1e-61), ints stay small
INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Raw:
    """A value as written: its text (a string's without the quotes), span, quotedness."""

    text: str
    span: Span | None = None
    quoted: bool = False


@dataclass(frozen=True)
class Option:
    """``keyword value`` (text) or ``keyword: value`` (YAML); ``span`` covers both."""

    keyword: str
    value: Raw
    span: Span | None = None


# ---- numbers ---------------------------------------------------------------------------------

def to_decimal(text: str, span: Span | None) -> Decimal:
    """The value of a number or percentage (``50%`` → 0.5), exactly.

    >>> to_decimal("66%", None)
    Decimal('0.66')
    """
    percent = text.endswith("%")
    body = text[:-1] if percent else text
    if not terminal_regex("NUMBER").fullmatch(body):
        raise RecipeError(f"expected a number, got '{quote(text)}'", span,
                          "numbers look like 16, 0.5, 1e-3 or 50%")
    try:
        value = Decimal(body)
        if value and not -2 * _MAX_EXPONENT <= value.adjusted() <= _MAX_EXPONENT:
            raise decimal.Overflow
        return value / 100 if percent else value
    except decimal.DecimalException:
        raise RecipeError(f"number out of range: {quote(text)}", span) from None


def to_number(text: str, span: Span | None) -> int | float:
    """An int for ``16``, a float for ``1e-3``, ``0.5`` or ``50%``.

    >>> to_number("16", None), to_number("50%", None)
    (16, 0.5)
    """
    value = to_decimal(text, span)
    return int(value) if INTEGER.fullmatch(text) else float(value)


def is_number(raw: Raw) -> bool:
    """Whether ``raw`` is an unquoted number or percentage.

    >>> is_number(Raw("50%")), is_number(Raw("16", quoted=True)), is_number(Raw("x"))
    (True, False, False)
    """
    return not raw.quoted and (terminal_regex("NUMBER").fullmatch(raw.text) is not None or
                               terminal_regex("PERCENT").fullmatch(raw.text) is not None)


def exact(raw: Raw) -> Decimal | None:
    """The exact value of an unquoted number or percentage, else None."""
    return to_decimal(raw.text, raw.span) if is_number(raw) else None


def literal(raw: Raw):
    """A criterion argument as its own type: number, percentage (→ fraction), true / false,
    or else the text itself.

    >>> [literal(Raw(t)) for t in ("16", "70%", "true", "mean")], literal(Raw("16", quoted=True))
    ([16, 0.7, True, 'mean'], '16')
    """
    if raw.quoted:
        return raw.text
    if raw.text in ("true", "false"):
        return raw.text == "true"
    return to_number(raw.text, raw.span) if is_number(raw) else raw.text


def unquote(text: str) -> str:
    """The value of a STRING token: quotes off, ``\\"`` ``\\'`` and ``\\\\`` unescaped.

    >>> unquote('"a\\\\"b"')
    'a"b'
    """
    return re.sub(r"\\([\"'\\])", r"\1", text[1:-1])


def shown(raw: Raw) -> str:
    """How a value reads in a message: numbers and true/false bare, other text in quotes.

    >>> shown(Raw("1.5")), shown(Raw("maybe")), shown(Raw("1", quoted=True))
    ('1.5', "'maybe'", "'1'")
    """
    bare = is_number(raw) or (not raw.quoted and raw.text in ("true", "false"))
    return quote(raw.text) if bare else f"'{quote(raw.text)}'"


# ---- checks: Raw → value, with one wording ---------------------------------------------------

class Check(ABC):
    """Turns a Raw into a value; ``phrase`` completes "must be ..." in its messages, ``type``
    names the kind of value for the registries (int, float, fraction, bool, choice)."""

    type = "str"

    @property
    @abstractmethod
    def phrase(self) -> str:
        """What a valid value is, as in "batch must be PHRASE"."""

    @abstractmethod
    def __call__(self, raw: Raw, what: str):
        """The value of ``raw``; a RecipeError naming ``what`` if it is not valid."""

    def fail(self, raw: Raw, what: str, hint: str | None = None) -> RecipeError:
        return RecipeError(f"{what} must be {self.phrase}, got {shown(raw)}", raw.span, hint)


@dataclass(frozen=True)
class Whole(Check):
    """A whole number >= ``minimum``.

    >>> Whole(minimum=0).phrase
    'a non-negative integer'
    """

    minimum: int = 1
    type = "int"

    @property
    def phrase(self) -> str:
        return {0: "a non-negative integer", 1: "a positive integer"}.get(
            self.minimum, f"an integer >= {self.minimum}")

    def __call__(self, raw: Raw, what: str) -> int:
        value = exact(raw)
        if value is None or not INTEGER.fullmatch(raw.text) or value < self.minimum:
            raise self.fail(raw, what)
        return int(value)


@dataclass(frozen=True)
class Share(Check):
    """A number or percentage between 0 and 1, each end open or closed; ``noun`` leads the
    phrase ("a fraction "), ``hint`` is shown when nothing more specific applies.

    >>> Share().phrase, Share(True, True, noun="a fraction ").phrase
    ('in (0, 1]', 'a fraction in (0, 1)')
    """

    low_open: bool = True
    high_open: bool = False
    noun: str = ""
    hint: str | None = None
    type = "fraction"

    @property
    def phrase(self) -> str:
        return f"{self.noun}in {'(' if self.low_open else '['}0, 1{')' if self.high_open else ']'}"

    def decimal(self, raw: Raw, what: str) -> Decimal:
        """The checked value, exactly."""
        value = exact(raw)
        if value is not None and self._inside(value):
            return value
        percent = value is not None and value > 1 and INTEGER.fullmatch(raw.text)
        raise self.fail(raw, what, f"write {raw.text}% for a percentage" if percent
                        else self.hint)

    def _inside(self, value: Decimal) -> bool:
        low_ok = value > 0 if self.low_open else value >= 0
        return low_ok and (value < 1 if self.high_open else value <= 1)

    def __call__(self, raw: Raw, what: str) -> float:
        return float(self.decimal(raw, what))


@dataclass(frozen=True)
class Real(Check):
    """A number > 0 (``strict``) or >= 0; ``words`` is the phrase.

    >>> Real(strict=False, words="non-negative")(Raw("5e-4"), "weight_decay")
    0.0005
    """

    strict: bool = True
    words: str = "positive"
    type = "float"

    @property
    def phrase(self) -> str:
        return self.words

    def __call__(self, raw: Raw, what: str) -> float:
        value = exact(raw)
        if value is None or value < 0 or (value == 0 and self.strict):
            raise self.fail(raw, what)
        return float(value)


@dataclass(frozen=True)
class Flag(Check):
    """``true`` or ``false``.

    >>> Flag()(Raw("true"), "oracle(signed=...)")
    True
    """

    type = "bool"

    @property
    def phrase(self) -> str:
        return "true or false"

    def __call__(self, raw: Raw, what: str) -> bool:
        if raw.quoted or raw.text not in ("true", "false"):
            raise self.fail(raw, what)
        return raw.text == "true"


@dataclass(frozen=True)
class Word(Check):
    """One of a few words, as an argument's value (``stat=mean``).

    >>> Word(("mean", "std")).phrase
    'mean or std'
    """

    options: tuple = ()
    type = "choice"

    @property
    def phrase(self) -> str:
        return " or ".join([", ".join(self.options[:-1]), self.options[-1]]
                           if len(self.options) > 1 else self.options)

    def __call__(self, raw: Raw, what: str) -> str:
        if raw.text in self.options:
            return raw.text
        hint = did_you_mean(raw.text, self.options).strip() or None
        raise self.fail(raw, what, hint)


@dataclass(frozen=True)
class Named(Check):
    """One of a few words naming a thing (``optimizer adam``): ``unknown WHAT 'x'``.

    >>> Named(("adam", "sgd"))(Raw("sgd"), "optimizer")
    'sgd'
    """

    options: tuple = ()
    type = "choice"

    @property
    def phrase(self) -> str:
        return "one of " + ", ".join(self.options)

    def __call__(self, raw: Raw, what: str) -> str:
        return choice(raw.text, self.options, what, raw.span)


def choice(word: str, options: Iterable[str], what: str, span: Span | None) -> str:
    """``word`` if it is one of ``options``; else an error suggesting the closest.

    >>> choice("l1", ("l1", "l2"), "criterion", None)
    'l1'
    """
    options = tuple(options)
    if word in options:
        return word
    hint = did_you_mean(word, options, cutoff=0.5) + "one of " + ", ".join(options)
    raise RecipeError(f"unknown {what} '{quote(word)}'", span, hint)
