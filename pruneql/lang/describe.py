"""The canonical text form of AST nodes: ``parse(describe(stmt))`` gives ``stmt`` back.

Amounts keep the user's spelling (the verb, a percentage or not); everything else is
written one canonical way (targets and sensitivity thresholds as percentages, criterion
arguments sorted, the default unit left out).

>>> from pruneql.lang.parse import parse_text
>>> stmt = parse_text("prune conv* by taylor( batches = 16 ) remove 10% round 8").statements[0]
>>> describe(stmt)
'prune conv* by taylor(batches=16) remove 10% round 8'
>>> describe(stmt.amount), describe(stmt.criterion)
('remove 10%', 'taylor(batches=16)')
"""
from __future__ import annotations

import re
from decimal import Decimal

from pruneql.lang import ast

__all__ = ["describe"]

_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER = re.compile(r"-?[0-9]+")
# how tightly each predicate binds: `not` over `and` over `or`; comparisons are atoms
_BINDING = {ast.Or: 1, ast.And: 2, ast.Not: 3}


def describe(node) -> str:
    """The text form of a statement, a Recipe, an Amount, a Criterion, a Selector or a
    predicate.

    >>> describe(ast.Amount("count", 6, "heads"))
    'keep 6 heads'
    """
    render = _RENDER.get(type(node))
    if render is None:
        raise TypeError(f"describe() takes an AST node of pruneql.lang.ast, not "
                        f"{type(node).__name__}")
    return render(node)


# ---- values -------------------------------------------------------------------------------------

def _plain(value: Decimal) -> str:
    """A decimal without an exponent or trailing zeros: 0.5, 100, 0.00001."""
    return format(value.normalize(), "f")


def _exact(value: float) -> Decimal:
    """The decimal a float was read from (floats come from short decimals, so repr is it)."""
    return Decimal(repr(float(value)))


def _percent(value: float) -> str:
    return _plain(_exact(value) * 100) + "%"


def _decimal(value: float) -> str:
    return _plain(_exact(value))


def _number(value) -> str:
    """An int as is, a float so that it reads back as a float (``3.0``, ``1e-05``)."""
    return repr(value) if isinstance(value, float) else str(value)


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _word(text: str) -> str:
    """A bare word where it reads back as itself, else a quoted string."""
    bare = _BARE_WORD.fullmatch(text) and text not in ("true", "false")
    return text if bare else _string(text)


def _argument(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _word(value) if isinstance(value, str) else _number(value)


def _optional(keyword: str, value, render=str) -> list[str]:
    return [] if value is None else [keyword, render(value)]


# ---- pieces -----------------------------------------------------------------------------------

def _amount(amount: ast.Amount) -> str:
    if amount.kind == "count":
        return f"keep {amount.value} {amount.unit}"
    kept = _exact(amount.value)
    shown = kept if amount.verb == "keep" else 1 - kept
    text = _plain(shown * 100) + "%" if amount.percent else _plain(shown)
    if amount.unit == "channels":
        return f"{amount.verb} {text}"
    if _INTEGER.fullmatch(text):      # a whole number before a unit would read as a count
        text += ".0"
    return f"{amount.verb} {text} {amount.unit}"


def _criterion(crit: ast.Criterion) -> str:
    if not crit.args:
        return crit.name
    return f"{crit.name}({', '.join(f'{k}={_argument(v)}' for k, v in crit.args)})"


def _selectors(selectors: tuple) -> str:
    return ", ".join(s.pattern for s in selectors)


def _predicate(pred, binding: int = 0) -> str:
    """``pred`` in parentheses when it binds less tightly than its place needs."""
    text = _PREDICATES[type(pred)](pred)
    return f"({text})" if _BINDING.get(type(pred), 4) < binding else text


def _value(value) -> str:
    return _word(value) if isinstance(value, str) else _number(value)


_PREDICATES = {
    ast.Or: lambda p: f"{_predicate(p.left, 1)} or {_predicate(p.right, 2)}",
    ast.And: lambda p: f"{_predicate(p.left, 2)} and {_predicate(p.right, 3)}",
    ast.Not: lambda p: f"not {_predicate(p.operand, 3)}",
    ast.Compare: lambda p: f"{p.attr} {p.op} {_value(p.value)}",
    ast.InList: lambda p: (f"{p.attr} {'not in' if p.negate else 'in'} "
                           f"[{', '.join(_value(v) for v in p.values)}]"),
}


# ---- statements -------------------------------------------------------------------------------

def _prune(stmt: ast.Prune) -> str:
    words = ["prune", _selectors(stmt.selectors)]
    words += _optional("in", stmt.scope, lambda s: s.pattern)
    words += _optional("where", stmt.where, _predicate)
    words += ["by", _criterion(stmt.criterion), _amount(stmt.amount)]
    return " ".join(words + _optional("round", stmt.round))


def _skip(stmt: ast.Skip) -> str:
    if stmt.sensitive:
        return " ".join(["skip sensitive"] + _optional("above", stmt.threshold, _percent))
    if stmt.where is not None and stmt.scope is None and \
            tuple(s.pattern for s in stmt.selectors) == ("**",):
        return f"skip where {_predicate(stmt.where)}"
    words = ["skip", _selectors(stmt.selectors)]
    words += _optional("in", stmt.scope, lambda s: s.pattern)
    return " ".join(words + _optional("where", stmt.where, _predicate))


def _data(stmt: ast.Data) -> str:
    words = ["data", stmt.source] + ([] if stmt.path is None else [_string(stmt.path)])
    words += _optional("batch", stmt.batch) + _optional("val", stmt.val, _decimal)
    words += _optional("test", stmt.test, _decimal) + _optional("seed", stmt.seed)
    words += _optional("resize", stmt.resize) + _optional("normalize", stmt.normalize)
    return " ".join(words)


def _iterate(stmt: ast.Iterate) -> str:
    head = (f"iterate until target remove {stmt.per_step} per step" if stmt.until_target
            else f"iterate {stmt.steps} steps")
    tail = "" if stmt.finetune_steps is None else f" finetune {stmt.finetune_steps} steps"
    return head + tail


def _finetune(stmt: ast.Finetune) -> str:
    words = ["finetune", "epochs", str(stmt.epochs)]
    words += _optional("lr", stmt.lr, _decimal) + _optional("momentum", stmt.momentum, _decimal)
    words += _optional("weight_decay", stmt.weight_decay, _decimal)
    return " ".join(words + _optional("optimizer", stmt.optimizer) +
                    _optional("select", stmt.select))


def _with_string(*words: str, string: str | None) -> str:
    return " ".join(words + (() if string is None else (_string(string),)))


_RENDER = {
    ast.Recipe: lambda r: "".join(describe(s) + "\n" for s in r.statements),
    ast.ModelStmt: lambda s: f"model {s.name}",
    ast.InputStmt: lambda s: "input " + "x".join(map(str, s.shape)),
    ast.StrategyStmt: lambda s: f"strategy {s.name}",
    ast.Prune: _prune,
    ast.Skip: _skip,
    ast.Target: lambda s: f"target {s.metric} {_percent(s.value)}",
    ast.Data: _data,
    ast.Iterate: _iterate,
    ast.Finetune: _finetune,
    ast.Emit: lambda s: _with_string("emit", s.format, string=s.path),
    ast.Task: lambda s: _with_string("task", s.kind, string=s.function),
    ast.TraceStmt: lambda s: f"trace {s.mode}",
    ast.Allow: lambda s: f"allow {s.what}",
    ast.Amount: _amount,
    ast.Criterion: _criterion,
    ast.Selector: lambda s: s.pattern,
    **{kind: _predicate for kind in _PREDICATES},
}
