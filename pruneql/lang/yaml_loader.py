"""YAML recipes (``.yaml``/``.yml``) → the same Recipe AST as the text form.

::

    model: resnet56_cifar
    input: 3x32x32                  # or [3, 32, 32]
    task: classification            # or {kind: python, function: "pkg.mod:fn"}
    trace: auto
    strategy: independent
    data: {source: digits, batch: 64, val: 0.1, test: 0.1, seed: 0}     # or data: digits
    prune:
      - select: conv1, conv{8..13}  # or a list of globs
        in: layer1                  # optional
        where: index not in [16, 20]             # optional, the text form's predicate
        by: l1                      # or "taylor(batches=16)" or {taylor: {batches: 16}}
        keep: 0.5                   # or keep: 50% | remove: 34% | keep: 48 channels |
                                    # keep: 0.5 heads | remove: 25% head_dims | channels: 48
        round: 8                    # optional
    skip:
      - select: conv1               # select / in / where, as in prune (select defaults to **)
        in: layer2
      - where: index in [16, 20]
      - sensitive: 1%               # or sensitive: true
    target: {flops: 50%}            # one Target per key: flops, params, latency
    iterate: {steps: 4, finetune: 10}           # or iterate: 4, or
                                                # {until: target, remove: 1, finetune: 10}
    finetune: {epochs: 2, lr: 0.001, momentum: 0.9, weight_decay: 5e-4, optimizer: sgd,
               select: best}
    emit: torchscript               # or {format: export, path: out.pt2}
    allow: inexact layernorm        # or a list of allowances

The Recipe lists statements in the order of ``ORDER`` whatever the key order in the file;
the order only shows in messages. This module only maps YAML onto the builder
(``pruneql.lang.builder``), which checks every value as it does for the text form; values
that are text-form fragments (selectors, scope, predicate, criterion, amount, model, input,
strategy) are parsed with the text grammar. So a YAML recipe and its text twin are equal.
The document is only composed (``yaml.compose``), never constructed: node positions give
spans, and no YAML value is ever turned into a Python object by pyyaml.
"""
from __future__ import annotations

import dataclasses
import re

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pruneql.errors import RecipeError, Span
from pruneql.lang import ast, builder
from pruneql.lang.parse import parse_fragment
from pruneql.lang.source import check_size, display_line, internal_error
from pruneql.lang.suggest import did_you_mean
from pruneql.lang.values import Option, Raw
from pruneql.lang.vocabulary import DATA_SOURCES, EMIT_FORMATS, TARGET_METRICS, TASKS

_QUOTE_HINT = ("in YAML, quote values that start with * & ! { [ | > % @ or hold ': ' "
               "or ' #', e.g. select: \"**\"")
# pyyaml's line breaks, so that our line numbers and its marks agree
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_TRUE = ("true", "yes", "on")


def parse_yaml(source: str, path: str = "recipe.yaml") -> ast.Recipe:
    """Parse a YAML recipe into a Recipe; raise RecipeError on any problem.

    An empty document is an empty recipe, as an empty text recipe is.

    >>> parse_yaml("model: vgg16_cifar\\ninput: [3, 32, 32]").statements
    (ModelStmt(name='vgg16_cifar'), InputStmt(shape=(3, 32, 32)))
    """
    if not isinstance(source, str):
        raise TypeError(f"parse_yaml takes a str, not {type(source).__name__}")
    source = source.removeprefix("\ufeff")
    check_size(source, path)
    try:
        statements = _Document(source, path).statements()
    except RecipeError:
        raise
    except Exception as exc:   # the contract: a Recipe or a RecipeError, whatever the input
        raise internal_error(exc) from exc
    return ast.Recipe(tuple(statements), source=source, path=path)


class _Document:
    """One YAML source: its lines, spans of its nodes, and typed access to them."""

    def __init__(self, source: str, path: str):
        self.source, self.path = source, path
        self.lines = _LINE_BREAK.split(source)
        self._shown: dict[int, str] = {}     # display_line, once per line

    # -- spans

    def at(self, line: int, column: int, end_column: int | None = None) -> Span:
        """A span at pyyaml's 0-based ``line`` and ``column`` (``end_column`` is a Span's:
        1-based, exclusive)."""
        if line not in self._shown:
            self._shown[line] = display_line(self.lines[line]) \
                if 0 <= line < len(self.lines) else ""
        return Span(line + 1, column + 1, end_column, self._shown[line], self.path)

    def span(self, first: Node, last: Node | None = None) -> Span:
        """The span of a node, or from ``first`` to ``last`` when they share a line."""
        start, end = first.start_mark, (last or first).end_mark
        same_line = end.line == start.line and end.column > start.column
        return self.at(start.line, start.column, end.column + 1 if same_line else None)

    def spanner(self, node: ScalarNode, prefix: str):
        """Map positions in ``prefix + node.value`` back to the YAML source."""
        start = node.start_mark
        single_line = node.end_mark.line == start.line and node.style in (None, "'", '"')
        first = start.column + 1 + (node.style is not None)   # 1-based, after a quote

        def span(line: int, column: int, end_column: int | None = None) -> Span:
            if line != 1 or not single_line:
                return self.span(node)
            col = max(first, first + column - 1 - len(prefix))
            end = None if end_column is None else \
                max(col + 1, first + end_column - 1 - len(prefix))
            return self.at(start.line, col - 1, end)
        return span

    # -- typed access

    def fragment(self, node: Node, prefix: str, start: str, what: str):
        """Parse a scalar with the text grammar, from rule ``start``."""
        text = self.scalar(node, what)
        return parse_fragment(prefix + text.rstrip(), start, self.spanner(node, prefix))

    def scalar(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode):
            raise RecipeError(f"{what} must be a single value, got {_kind(node)}",
                              self.span(node))
        if node.tag == _NULL:
            raise RecipeError(f"{what} needs a value", self.span(node))
        return node.value

    def sequence(self, node: Node, what: str, example: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise RecipeError(f"{what} must be a list, got {_kind(node)}", self.span(node),
                              f"e.g. {example}")
        return node.value

    def mapping(self, node: Node, what: str, keys: tuple[str, ...],
                example: str) -> dict[str, tuple[Node, Node]]:
        """``{key: (key node, value node)}``; unknown or repeated keys are errors."""
        if not isinstance(node, MappingNode):
            raise RecipeError(f"{what} must be a mapping, got {_kind(node)}", self.span(node),
                              f"e.g. {example}")
        found: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else None
            if name not in keys:
                raise _unknown_key(self, key, name, what, keys)
            if name in found:
                raise RecipeError(f"duplicate key '{name}' in {what}", self.span(key))
            found[name] = (key, value)
        return found

    def raw(self, node: Node, what: str) -> Raw:
        """A scalar as a value for the builder (a number even when quoted)."""
        return Raw(self.scalar(node, what).strip(), self.span(node))

    def text(self, node: Node, what: str) -> Raw:
        """A scalar that is a string whatever it looks like (a path, a function)."""
        return Raw(self.scalar(node, what), self.span(node), quoted=True)

    def options(self, given: dict, names) -> list[Option]:
        """The entries of ``given`` named in ``names``, as builder options."""
        return [Option(name, self.raw(value, name), self.span(key, value))
                for name, (key, value) in given.items() if name in names]

    # -- the recipe

    def statements(self) -> list:
        root = _compose(self)
        if root is None:
            return []
        if not isinstance(root, MappingNode):
            raise RecipeError(f"a YAML recipe must be a mapping of statements, got "
                              f"{_kind(root)}", self.span(root),
                              "start with e.g. model: vgg16_cifar (is this a text recipe? "
                              "name it .prune)")
        entries = self.mapping(root, "the recipe", ORDER, "model: vgg16_cifar")
        statements: list = []
        for name in ORDER:
            if name in entries:
                key, value = entries[name]
                statements += _STATEMENTS[name](self, key, value)
        return statements


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "nothing" if node.tag == _NULL else f"'{node.value[:40]}'"


def _unknown_key(doc: _Document, key: Node, name: str | None, what: str,
                 keys: tuple[str, ...]) -> RecipeError:
    if name is None:
        return RecipeError(f"keys in {what} must be words, got {_kind(key)}", doc.span(key))
    hint = did_you_mean(name, keys) + "keys: " + ", ".join(keys)
    return RecipeError(f"unknown key '{name[:40]}' in {what}", doc.span(key), hint)


def _compose(doc: _Document) -> Node | None:
    """The YAML node tree, with pyyaml's errors turned into RecipeErrors."""
    try:
        return yaml.compose(doc.source, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        span = doc.at(mark.line, mark.column) if mark else None
        problem = " ".join(p for p in (err.problem, err.context and f"({err.context})") if p)
        raise RecipeError(f"invalid YAML: {problem or 'syntax error'}", span,
                          _QUOTE_HINT) from None
    except yaml.reader.ReaderError as err:
        before = doc.source[:err.position]
        line = len(_LINE_BREAK.findall(before))
        column = len(_LINE_BREAK.split(before)[-1])
        raise RecipeError(f"invalid YAML: character U+{err.character:04X} is not allowed"
                          if isinstance(err.character, int) else f"invalid YAML: {err.reason}",
                          doc.at(line, column), "remove control characters") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"invalid YAML: {str(err)[:200]}", None, _QUOTE_HINT) from None
    except RecursionError:
        raise RecipeError("invalid YAML: nested too deeply", None,
                          "a recipe is a mapping of statements a few levels deep") from None


# ---- statements -----------------------------------------------------------------------------

def _replace_span(node, span: Span):
    return dataclasses.replace(node, span=span)


def _keyword(word: str):
    """A statement whose value is read by the text grammar: ``model``, ``strategy``."""
    def read(doc: _Document, key: Node, value: Node) -> list:
        stmt = doc.fragment(value, f"{word} ", word, word)
        return [_replace_span(stmt, doc.span(key, value))]
    return read


def _required(doc: _Document, given: dict, name: str, where: Node, message: str,
              hint: str) -> Node:
    """The value node of the key ``name``; ``message`` says that it is missing."""
    if name not in given:
        raise RecipeError(message, doc.span(where), hint)
    return given[name][1]


def _optional(doc: _Document, given: dict, name: str, text: bool = False) -> Raw | None:
    if name not in given:
        return None
    node = given[name][1]
    return doc.text(node, name) if text else doc.raw(node, name)


def _input(doc: _Document, key: Node, value: Node) -> list:
    span = doc.span(key, value)
    if isinstance(value, SequenceNode):
        dims = [doc.raw(d, "an input dimension") for d in value.value]
        if not dims:
            raise RecipeError("input needs at least one dimension", doc.span(value),
                              "e.g. input: [3, 32, 32]")
        return [builder.input_shape(dims, span)]
    return [_replace_span(doc.fragment(value, "input ", "input", "input"), span)]


def _data(doc: _Document, key: Node, value: Node) -> list:
    span = doc.span(key, value)
    if isinstance(value, ScalarNode):
        return [builder.data(doc.raw(value, "data source"), None, [], span)]
    given = doc.mapping(value, "data", ("source", "path", *builder.DATA_OPTIONS),
                        "data: {source: npz, path: train.npz, batch: 64}")
    source = _required(doc, given, "source", value, "data needs a source",
                       "one of " + ", ".join(DATA_SOURCES))
    return [builder.data(doc.raw(source, "data source"), _optional(doc, given, "path", True),
                         doc.options(given, builder.DATA_OPTIONS), span)]


def _targets(doc: _Document, key: Node, value: Node) -> list:
    given = doc.mapping(value, "target", TARGET_METRICS, "target: {flops: 50%}")
    return [builder.target(Raw(metric, doc.span(name)), doc.raw(amount, f"target {metric}"),
                           doc.span(name, amount))
            for metric, (name, amount) in given.items()]


def _iterate(doc: _Document, key: Node, value: Node) -> list:
    span = doc.span(key, value)
    if isinstance(value, ScalarNode):
        return [builder.iterate_steps(doc.raw(value, "iterate steps"), None, span)]
    given = doc.mapping(value, "iterate", ("steps", "until", "remove", "finetune"),
                        "iterate: {steps: 4, finetune: 10}")
    finetune = _optional(doc, given, "finetune")
    if "until" in given:
        return [_iterate_until(doc, value, given, finetune, span)]
    if "remove" in given:
        raise RecipeError("remove (per step) goes with until: target",
                          doc.span(given["remove"][0]),
                          "e.g. iterate: {until: target, remove: 1, finetune: 10}")
    steps = _required(doc, given, "steps", value, "iterate needs steps",
                      "e.g. iterate: {steps: 4}")
    return [builder.iterate_steps(doc.raw(steps, "iterate steps"), finetune, span)]


def _iterate_until(doc: _Document, value: Node, given: dict, finetune: Raw | None,
                   span: Span) -> ast.Iterate:
    if "steps" in given:
        raise RecipeError("iterate takes steps or until, not both", doc.span(given["steps"][0]),
                          "iterate: {steps: 4} prunes in 4 steps; iterate: {until: target, "
                          "remove: 1} prunes until the target is met")
    remove = _required(doc, given, "remove", value, "iterate until needs remove",
                       "how many channels each step removes: "
                       "iterate: {until: target, remove: 1}")
    return builder.iterate_until(doc.raw(given["until"][1], "until"),
                                 doc.raw(remove, "remove"), finetune, span)


def _finetune(doc: _Document, key: Node, value: Node) -> list:
    given = doc.mapping(value, "finetune", ("epochs", *builder.FINETUNE_OPTIONS),
                        "finetune: {epochs: 2, lr: 0.01}")
    epochs = _required(doc, given, "epochs", value, "finetune needs epochs",
                       "e.g. finetune: {epochs: 2}")
    return [builder.finetune(doc.raw(epochs, "epochs"),
                             doc.options(given, builder.FINETUNE_OPTIONS), doc.span(key, value))]


def _emit(doc: _Document, key: Node, value: Node) -> list:
    span = doc.span(key, value)
    if isinstance(value, ScalarNode):
        return [builder.emit(doc.raw(value, "emit format"), None, span)]
    given = doc.mapping(value, "emit", ("format", "path"), "emit: {format: export, path: out.pt2}")
    fmt = _required(doc, given, "format", value, "emit needs a format",
                    "one of " + ", ".join(EMIT_FORMATS))
    return [builder.emit(doc.raw(fmt, "emit format"), _optional(doc, given, "path", True),
                         span)]


def _task(doc: _Document, key: Node, value: Node) -> list:
    span = doc.span(key, value)
    if isinstance(value, ScalarNode):
        return [builder.task(doc.raw(value, "task"), None, span)]
    given = doc.mapping(value, "task", ("kind", "function"),
                        'task: {kind: python, function: "pkg.module:function"}')
    kind = _required(doc, given, "kind", value, "task needs a kind",
                     "one of " + ", ".join(TASKS))
    return [builder.task(doc.raw(kind, "task"), _optional(doc, given, "function", True), span)]


def _trace(doc: _Document, key: Node, value: Node) -> list:
    return [builder.trace(doc.raw(value, "trace"), doc.span(key, value))]


def _allow(doc: _Document, key: Node, value: Node) -> list:
    if not isinstance(value, SequenceNode):
        return [builder.allow(doc.raw(value, "allow"), doc.span(key, value))]
    return [builder.allow(doc.raw(item, "an allowance"), doc.span(item)) for item in value.value]


# ---- prune and skip entries ------------------------------------------------------------------

_PRUNE_KEYS = ("select", "in", "where", "by", "keep", "remove", "channels", "round")
_SKIP_KEYS = ("select", "in", "where", "sensitive")
_AMOUNT_KEYS = ("keep", "remove", "channels")
_PRUNE_EXAMPLE = "e.g. {select: conv1, by: l1, keep: 0.5}"


def _prunes(doc: _Document, key: Node, value: Node) -> list:
    items = doc.sequence(value, "prune", "prune: [{select: conv1, by: l1, keep: 0.5}]")
    return [_prune(doc, item) for item in items]


def _prune(doc: _Document, item: Node) -> ast.Prune:
    given = doc.mapping(item, "a prune entry", _PRUNE_KEYS, "{select: conv1, by: l1, keep: 0.5}")
    select = _required(doc, given, "select", item, "a prune entry needs 'select'",
                       _PRUNE_EXAMPLE)
    by = _required(doc, given, "by", item, "a prune entry needs 'by'", _PRUNE_EXAMPLE)
    return builder.prune(_selectors(doc, select), _criterion(doc, by), _amount(doc, item, given),
                         *_scope_where(doc, given), _optional(doc, given, "round"),
                         doc.span(item))


def _skips(doc: _Document, key: Node, value: Node) -> list:
    items = doc.sequence(value, "skip", "skip: [{select: conv1}, {sensitive: 1%}]")
    return [_skip(doc, item) for item in items]


def _skip(doc: _Document, item: Node) -> ast.Skip:
    given = doc.mapping(item, "a skip entry", _SKIP_KEYS, "{select: conv1, in: layer2}")
    if "sensitive" in given:
        return _skip_sensitive(doc, item, given)
    if not given:
        raise RecipeError("a skip entry needs select, in, where or sensitive", doc.span(item))
    select = given.get("select")
    selectors = None if select is None else _selectors(doc, select[1])
    return builder.skip(selectors, *_scope_where(doc, given), doc.span(item))


def _skip_sensitive(doc: _Document, item: Node, given: dict) -> ast.Skip:
    others = sorted(set(given) - {"sensitive"})
    key, value = given["sensitive"]
    if others:
        raise RecipeError(f"sensitive cannot be combined with {', '.join(others)}",
                          doc.span(key), "give it an entry of its own: - sensitive: 1%")
    if isinstance(value, ScalarNode) and value.tag == _BOOL:
        if value.value.lower() not in _TRUE:
            raise RecipeError("sensitive: false skips nothing", doc.span(value),
                              "remove the entry, or write sensitive: true or sensitive: 1%")
        return builder.skip_sensitive(None, doc.span(item))
    return builder.skip_sensitive(doc.raw(value, "sensitive"), doc.span(item))


def _selectors(doc: _Document, node: Node) -> tuple:
    if not isinstance(node, SequenceNode):
        return doc.fragment(node, "", "selectors", "select")
    if not node.value:
        raise RecipeError("select needs at least one selector", doc.span(node))
    # one glob per item: checked by Glob alone, which is much faster than a parse per item
    return tuple(builder.selector(doc.raw(item, "a selector")) for item in node.value)


def _scope_where(doc: _Document, given: dict) -> tuple:
    scope, where = given.get("in"), given.get("where")
    return (None if scope is None else doc.fragment(scope[1], "in ", "scope", "in"),
            None if where is None else doc.fragment(where[1], "where ", "where", "where"))


def _amount(doc: _Document, item: Node, given: dict) -> ast.Amount:
    present = [k for k in _AMOUNT_KEYS if k in given]
    if len(present) != 1:
        problem = "needs an amount" if not present else \
            f"has {' and '.join(present)}; give only one"
        raise RecipeError(f"a prune entry {problem}", doc.span(item),
                          "keep: 0.5, keep: 50%, remove: 34%, keep: 48 channels or "
                          "channels: 48")
    key, value = given[present[0]]
    if present[0] == "channels":      # channels: N is keep N channels
        return builder.amount("keep", doc.raw(value, "channels"), Raw("channels", doc.span(key)),
                              doc.span(value))
    return doc.fragment(value, f"{present[0]} ", "amount", present[0])


def _criterion(doc: _Document, node: Node) -> ast.Criterion:
    if not isinstance(node, MappingNode):
        return doc.fragment(node, "", "criterion", "by")
    if len(node.value) != 1:
        raise RecipeError("by takes one criterion", doc.span(node),
                          "e.g. by: {taylor: {batches: 16}} or by: taylor(batches=16)")
    name, args = node.value[0]
    word = doc.scalar(name, "a criterion name")
    return builder.criterion(Raw(word, doc.span(name)), _arguments(doc, args, word),
                             doc.span(node))


def _arguments(doc: _Document, node: Node, name: str) -> list[Option]:
    """``{batches: 16}`` → options, values typed as in the text form."""
    if isinstance(node, ScalarNode) and node.tag == _NULL:
        return []
    if not isinstance(node, MappingNode):
        raise RecipeError(f"the arguments of {name} must be a mapping, got {_kind(node)}",
                          doc.span(node), "e.g. by: {taylor: {batches: 16}}")
    return [Option(doc.scalar(k, "an argument name"), _argument(doc, v), doc.span(k, v))
            for k, v in node.value]


def _argument(doc: _Document, node: Node) -> Raw:
    """A quoted scalar is a string; a plain YAML boolean (True, yes, on) reads as true/false."""
    text = doc.scalar(node, "an argument")
    if node.style is not None:
        return Raw(text, doc.span(node), quoted=True)
    if node.tag == _BOOL:
        text = "true" if text.lower() in _TRUE else "false"
    return Raw(text.strip(), doc.span(node))


_STATEMENTS = {"model": _keyword("model"), "input": _input, "task": _task, "trace": _trace,
               "strategy": _keyword("strategy"), "data": _data, "prune": _prunes,
               "skip": _skips, "target": _targets, "iterate": _iterate,
               "finetune": _finetune, "emit": _emit, "allow": _allow}
ORDER = tuple(_STATEMENTS)
