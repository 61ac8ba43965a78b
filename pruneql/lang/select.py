"""Selector globs and ``where`` predicates, on plain strings: this module knows no model.

Glob rules (module names are dotted, like ``layer1.0.conv1``):

- ``*`` matches within one dotted component; ``**`` as a whole component spans any number of
  components, zero included (``layer1.**.conv1`` matches ``layer1.conv1``);
- a pattern with no dot matches the last component at any depth, like ``.gitignore``
  (``conv1`` matches ``layer1.0.conv1``); a pattern with a dot, or a leading ``/``, is
  anchored at the root (``/conv1`` is the root's ``conv1`` only);
- ``{a,b}`` is alternation (it may nest and hold dots and ``*``); ``{8..13}`` is an inclusive
  numeric range, in either order, matched without expanding it, so ``{1..99999999999999}``
  costs no more than ``{1..9}``. Numbers compare as integers: ``{8..13}`` matches ``08``.
"""
from __future__ import annotations

import operator
import re
from typing import Mapping

from pruneql.errors import RecipeError, Span
from pruneql.lang.ast import And, Compare, InList, Not, Or
from pruneql.lang.suggest import closest

__all__ = ["Glob", "closest", "evaluate", "in_scope"]

_MAX_BRACE_DEPTH = 16
_MAX_RANGE_DIGITS = 30
_RANGE = re.compile(r"\s*([0-9]+)\s*\.\.\s*([0-9]+)\s*")
# one lexical piece of a glob: a run of name characters, a run of stars, or one other char
_PIECE = re.compile(r"[A-Za-z0-9_]+|\*+|.", re.S)
_PLAIN = re.compile(r"[A-Za-z0-9_]+")


class Glob:
    """A compiled module-name glob.

    >>> Glob("conv{8..13}").match("features.conv9")
    True
    >>> Glob("layer1.**.conv1").match("layer1.conv1"), Glob("/conv1").match("layer1.conv1")
    (True, False)
    """

    def __init__(self, pattern: str, span: Span | None = None):
        self.pattern = pattern
        self.span = span
        self.anchored, self._items = _compile(pattern, span)

    @classmethod
    def of(cls, selector) -> "Glob":
        """The glob of an ``ast.Selector``."""
        return cls(selector.pattern, selector.span)

    def match(self, name: str) -> bool:
        """Whether the dotted module ``name`` matches this glob."""
        return len(name) in _ends(self._items, name, {0})

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


def in_scope(scope: Glob, name: str) -> bool:
    """Whether ``name`` is inside ``scope``: the name or one of its ancestors matches.

    >>> in_scope(Glob("layer1"), "layer1.0.conv1"), in_scope(Glob("layer1"), "layer2.0.conv1")
    (True, False)
    """
    parts = name.split(".")
    return any(scope.match(".".join(parts[:i])) for i in range(1, len(parts) + 1))


# ---- compiling a glob ---------------------------------------------------------------------

_BRACE_HINT = "braces hold alternatives or a range: conv{1,2} or conv{8..13}"
_RANGES = re.compile(r"\{\s*[0-9]+\s*\.\.\s*[0-9]+\s*\}")


def _error(message: str, pattern: str, span: Span | None, hint: str | None = None):
    return RecipeError(f"{message} in selector '{_clip(pattern)}'", span, hint)


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _compile(pattern: str, span: Span | None) -> tuple[bool, list]:
    """Validate ``pattern``; return (anchored, the items to match)."""
    if _PLAIN.fullmatch(pattern):                 # the common case, kept cheap
        return False, [_Spine("lead"), _Lit(pattern)]
    if not pattern or pattern == "/":
        raise RecipeError("empty selector", span, "name a layer, e.g. conv1 or layer1.*")
    rooted = pattern.startswith("/")
    body = pattern[1:] if rooted else pattern
    components = _collapse(_split_top(body, ".", _match_braces(body, pattern, span)))
    if "" in components:
        raise _error("empty name component", pattern, span, "dots separate names: layer1.0.conv1")
    items = _join(components, pattern, span)
    anchored = rooted or "." in _RANGES.sub("", body)
    return anchored, items if anchored else [_Spine("lead")] + items


def _match_braces(text: str, pattern: str, span: Span | None) -> dict[int, int]:
    """Map each '{' index to its '}' index; complain about unbalanced or deep braces."""
    closing: dict[int, int] = {}
    if "{" not in text and "}" not in text:
        return closing
    stack = []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
            if len(stack) > _MAX_BRACE_DEPTH:
                raise _error("braces nested too deeply", pattern, span)
        elif ch == "}":
            if not stack:
                raise _error("unbalanced '}'", pattern, span, _BRACE_HINT)
            closing[stack.pop()] = i
    if stack:
        raise _error("unbalanced '{'", pattern, span, _BRACE_HINT)
    return closing


def _split_top(text: str, sep: str, closing: dict[int, int]) -> list[str]:
    """Split ``text`` at ``sep`` characters outside braces."""
    parts, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "{":
            i = closing[i]
        elif text[i] == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _collapse(components: list[str]) -> list[str]:
    """``a.**.**.b`` means ``a.**.b``."""
    return [c for i, c in enumerate(components)
            if not (c == "**" and i > 0 and components[i - 1] == "**")]


def _join(components: list[str], pattern: str, span: Span | None) -> list:
    """Items for dotted components; a ``**`` component spans any number of components."""
    if components == ["**"]:
        return [_Spine("all")]
    items: list = []
    for i, comp in enumerate(components):
        if comp == "**":
            items.append(_Spine("lead" if i == 0 else "tail"))
            continue
        if i > 0 and not (i == 1 and components[0] == "**"):
            items.append(_Lit("."))               # a leading ** already ends at a dot
        items += _component(comp, pattern, span)
    return items


def _component(text: str, pattern: str, span: Span | None, depth: int = 0) -> list:
    """Items for one component, or for one alternative inside braces (``depth`` > 0)."""
    closing = _match_braces(text, pattern, span)
    items, i = [], 0
    while i < len(text):
        if text[i] == "{":
            items.append(_braces(text[i + 1:closing[i]], pattern, span, depth))
            i = closing[i] + 1
            continue
        piece = _PIECE.match(text, i).group()
        item = _piece(piece, pattern, span, depth)
        if item is not None:
            items.append(item)
        i += len(piece)
    return items


def _piece(piece: str, pattern: str, span: Span | None, depth: int):
    if piece[0] == "*":
        return _Star()
    if piece[0].isascii() and (piece[0].isalnum() or piece[0] == "_"):
        return _Lit(piece)
    if piece == "." and depth > 0:
        return _Lit(".")
    if piece.isspace() and depth > 0:
        return None                                # `{a, b}` reads as `{a,b}`
    if piece == "/":
        raise _error("'/' may only start a selector", pattern, span)
    shown = piece if piece.isprintable() else f"U+{ord(piece):04X}"
    raise _error(f"invalid character '{shown}'", pattern, span,
                 "a selector holds letters, digits, _, ., *, ** and {a,b} or {8..13}")


def _braces(inner: str, pattern: str, span: Span | None, depth: int):
    """The item for the inside of one {...}: a numeric range or alternatives."""
    found = _RANGE.fullmatch(inner)
    if found:
        bounds = [b.lstrip("0") or "0" for b in found.groups()]
        if max(map(len, bounds)) > _MAX_RANGE_DIGITS:
            raise _error("range bound too long", pattern, span)
        return _Range(*sorted(map(int, bounds)))
    if not inner.strip():
        raise _error("empty braces", pattern, span, _BRACE_HINT)
    options = _split_top(inner, ",", _match_braces(inner, pattern, span))
    for option in options:
        if "" in _split_top(option, ".", _match_braces(option, pattern, span))[1:-1]:
            raise _error("empty name component", pattern, span, "dots separate names: layer1.0")
    return _Alt([_component(o, pattern, span, depth + 1) for o in options])


# ---- matching -----------------------------------------------------------------------------
# Matching carries the set of positions in the name where the text matched so far may end
# (an NFA simulation). Unlike a backtracking regex, `*a*a*a*a*a*a*b` cannot take exponential
# time: the cost is at most items × len(name)².

def _ends(items: list, name: str, starts: set[int]) -> set[int]:
    for item in items:
        if not starts:
            break
        starts = item.ends(name, starts)
    return starts


class _Lit:
    def __init__(self, text: str):
        self.text = text

    def ends(self, name: str, starts: set[int]) -> set[int]:
        return {p + len(self.text) for p in starts if name.startswith(self.text, p)}


class _Star:
    """``*``: any run of characters inside one component."""

    def ends(self, name: str, starts: set[int]) -> set[int]:
        out: set[int] = set()
        for p in starts:
            stop = name.find(".", p)
            out.update(range(p, (len(name) if stop < 0 else stop) + 1))
        return out


class _Range:
    """``{lo..hi}``: a run of digits whose value lies in [lo, hi]."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def ends(self, name: str, starts: set[int]) -> set[int]:
        out: set[int] = set()
        for p in starts:
            q = p
            while q < len(name) and name[q] in "0123456789":
                q += 1
            out.update(e for e in range(p + 1, q + 1) if self._holds(name[p:e]))
        return out

    def _holds(self, digits: str) -> bool:
        digits = digits.lstrip("0") or "0"
        return len(digits) <= _MAX_RANGE_DIGITS and self.lo <= int(digits) <= self.hi


class _Alt:
    """``{a,b}``: any of the alternatives."""

    def __init__(self, options: list[list]):
        self.options = options

    def ends(self, name: str, starts: set[int]) -> set[int]:
        out: set[int] = set()
        for option in self.options:
            out |= _ends(option, name, starts)
        return out


class _Spine:
    """Whole components: ``all`` is a lone ``**``; ``lead`` is a leading ``**.`` (and the
    implicit any-parent prefix of an unanchored glob), ending right after a dot; ``tail`` is
    ``.**`` after a component, consuming the dots before the components it spans."""

    def __init__(self, kind: str):
        self.kind = kind

    def ends(self, name: str, starts: set[int]) -> set[int]:
        out = set(starts)
        for p in starts:
            if self.kind == "all":
                out.update(range(p, len(name) + 1))
            elif self.kind == "lead":
                out.update(i + 1 for i in range(p + 1, len(name)) if name[i] == ".")
            elif p < len(name) and name[p] == ".":
                out.update(i for i in range(p + 2, len(name) + 1)
                           if i == len(name) or name[i] == ".")
        return out


# ---- predicates ---------------------------------------------------------------------------

_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def evaluate(pred, attrs: Mapping[str, object]) -> bool:
    """Evaluate an ``ast`` predicate on one layer's attributes.

    A comparison on a missing (or None) attribute is False, whatever the operator: 1×1 convs
    have no ``index``, so ``index not in [16, 20]`` does not select them. Values of different
    types are never equal and never ordered. A tuple whose entries are all equal compares as
    that entry, so a (3, 3) kernel is ``kernel == 3``.

    >>> from pruneql.lang.ast import Compare
    >>> evaluate(Compare("out_channels", ">=", 64), {"out_channels": 128})
    True
    """
    if isinstance(pred, And):
        return evaluate(pred.left, attrs) and evaluate(pred.right, attrs)
    if isinstance(pred, Or):
        return evaluate(pred.left, attrs) or evaluate(pred.right, attrs)
    if isinstance(pred, Not):
        return not evaluate(pred.operand, attrs)
    value = _scalar(attrs.get(pred.attr))
    if value is None:
        return False
    if isinstance(pred, InList):
        return any(_equal(value, v) for v in pred.values) != pred.negate
    if isinstance(pred, Compare):
        return _compare(value, pred.op, pred.value)
    raise TypeError(f"not a predicate: {pred!r}")


def _scalar(value):
    if isinstance(value, (tuple, list)) and value and all(v == value[0] for v in value):
        return value[0]
    return value


def _kind(value) -> str:
    if isinstance(value, str):
        return "str"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "number"
    return "other"


def _equal(a, b) -> bool:
    return _kind(a) == _kind(b) != "other" and a == b


def _compare(a, op: str, b) -> bool:
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if _kind(a) != _kind(b) or _kind(a) == "other":
        return False
    return _ORDER[op](a, b)
