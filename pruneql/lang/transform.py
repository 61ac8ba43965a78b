"""The text form's parse tree → builder calls: one method per grammar rule.

Tokens become ``Raw`` values with their spans; the builder checks them. Nothing here knows
a bound.

>>> from pruneql.lang.grammar import parser
>>> from pruneql.lang.source import text_spanner
>>> tree = parser().parse("finetune epochs 2 select best", start="start")
>>> ToAst(text_spanner(["finetune epochs 2 select best"], "r")).transform(tree)[0].select
'best'
"""
from __future__ import annotations

from lark import Token, Transformer_NonRecursive, v_args

from pruneql.errors import Span
from pruneql.lang import builder
from pruneql.lang.source import Spanner
from pruneql.lang.values import Option, Raw, unquote


@v_args(meta=True)
class ToAst(Transformer_NonRecursive):
    """Non-recursive, so deeply nested input cannot overflow the stack."""

    def __init__(self, spanner: Spanner):
        super().__init__()
        self._spanner = spanner

    # -- spans and tokens

    def _span(self, meta) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        end = meta.end_column if meta.end_line == meta.line else None
        return self._spanner(meta.line, meta.column, end)

    def _raw(self, tok: Token | None) -> Raw | None:
        """A token as written: a STRING without its quotes."""
        if tok is None:
            return None
        end = tok.end_column if tok.end_line == tok.line else None
        span = self._spanner(tok.line, tok.column, end)
        if tok.type == "STRING":
            return Raw(unquote(str(tok)), span, quoted=True)
        return Raw(str(tok), span)

    def _option(self, meta, children) -> Option:
        keyword, value = children
        return Option(str(keyword), self._raw(value), self._span(meta))

    # -- statements

    def start(self, meta, children):
        return children

    def model(self, meta, children):
        return builder.model(self._raw(children[0]), self._span(meta))

    def input(self, meta, children):
        return builder.input_shape(self._dimensions(children[0]), self._span(meta))

    def _dimensions(self, tok: Token) -> list[Raw]:
        """``3x32x32`` → one Raw per dimension, each spanning its digits."""
        dims, column = [], tok.column
        for part in str(tok).split("x"):
            dims.append(Raw(part, self._spanner(tok.line, column, column + len(part))))
            column += len(part) + 1
        return dims

    def strategy(self, meta, children):
        return builder.strategy(self._raw(children[-1]), self._span(meta))

    def prune(self, meta, children):
        selectors, scope, where, crit, amt, rnd = children
        return builder.prune(selectors, crit, amt, scope, where, rnd, self._span(meta))

    def skip(self, meta, children):
        selectors, scope, where = children
        return builder.skip(selectors, scope, where, self._span(meta))

    def skip_where(self, meta, children):
        return builder.skip(None, None, children[0], self._span(meta))

    def skip_sensitive(self, meta, children):
        return builder.skip_sensitive(self._raw(children[0]), self._span(meta))

    def target(self, meta, children):
        metric, value = children
        return builder.target(self._raw(metric), self._raw(value), self._span(meta))

    def data(self, meta, children):
        source, path, *options = children
        return builder.data(self._raw(source), self._raw(path), options, self._span(meta))

    def iterate_steps(self, meta, children):
        steps, finetune = children
        return builder.iterate_steps(self._raw(steps), finetune, self._span(meta))

    def iterate_until(self, meta, children):
        per_step, finetune = children
        until = Raw("target", self._span(meta))
        return builder.iterate_until(until, self._raw(per_step), finetune, self._span(meta))

    def iterate_finetune(self, meta, children):
        return self._raw(children[0])

    def finetune(self, meta, children):
        epochs, *options = children
        return builder.finetune(self._raw(epochs), options, self._span(meta))

    def emit(self, meta, children):
        fmt, path = children
        return builder.emit(self._raw(fmt), self._raw(path), self._span(meta))

    def task(self, meta, children):
        kind, function = children
        return builder.task(self._raw(kind), self._raw(function), self._span(meta))

    def trace(self, meta, children):
        return builder.trace(self._raw(children[-1]), self._span(meta))

    def allow(self, meta, children):
        first, last = self._raw(children[0]), self._raw(children[-1])
        span = self._spanner(first.span.line, first.span.column, last.span.end_column)
        return builder.allow(Raw(" ".join(map(str, children)), span), self._span(meta))

    # -- keyword choices (rules marked ! in the grammar keep their words)

    def target_metric(self, meta, children):
        return children[-1]

    data_source = task_kind = emit_format = target_metric

    # -- options: Option(keyword, raw value, span)

    data_option = finetune_option = _option

    # -- selectors, criterion, amount

    def selectors(self, meta, children):
        return tuple(builder.selector(self._raw(tok)) for tok in children)

    def scope(self, meta, children):
        return builder.selector(self._raw(children[0]))

    def round(self, meta, children):
        return self._raw(children[0])

    def criterion(self, meta, children):
        name, args = children
        return builder.criterion(self._raw(name), args or [], self._span(meta))

    def arguments(self, meta, children):
        return children

    def argument(self, meta, children):
        name, value = children
        return Option(str(name), self._raw(value), self._span(meta))

    def keep(self, meta, children):
        quantity, unit = children
        return builder.amount("keep", self._raw(quantity), unit, self._span(meta))

    def remove(self, meta, children):
        quantity, unit = children
        return builder.amount("remove", self._raw(quantity), unit, self._span(meta))

    def unit(self, meta, children):
        return self._raw(children[0])

    # -- predicates

    def where(self, meta, children):
        return builder.where(children[0], self._span(meta))

    def or_(self, meta, children):
        return builder.either(children[0], children[1], self._span(meta))

    def and_(self, meta, children):
        return builder.both(children[0], children[1], self._span(meta))

    def not_(self, meta, children):
        return builder.negated(children[0], self._span(meta))

    def compare(self, meta, children):
        attr, op, value = children
        return builder.compare(self._raw(attr), str(op), self._raw(value), self._span(meta))

    def in_list(self, meta, children):
        attr, values = children
        return builder.in_list(self._raw(attr), values, False, self._span(meta))

    def not_in_list(self, meta, children):
        attr, values = children
        return builder.in_list(self._raw(attr), values, True, self._span(meta))

    def list(self, meta, children):
        return [self._raw(tok) for tok in children]
