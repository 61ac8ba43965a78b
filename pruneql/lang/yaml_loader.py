"""YAML recipes (``.yaml``/``.yml``) → the same Recipe AST as the text form.

::

    model: resnet56_cifar
    input: 3x32x32                  # or [3, 32, 32]
    strategy: independent
    data: {source: digits, path: ..., batch: 64, val: 0.1}     # or data: digits
    prune:
      - select: conv1, conv{8..13}  # or a list of globs
        in: layer1                  # optional
        where: index not in [16, 20]             # optional, the text form's predicate
        by: l1                      # or "taylor(batches=16)" or {taylor: {batches: 16}}
        keep: 0.5                   # or keep: 50% | remove: 34% | keep: 48 channels | channels: 48
        round: 8                    # optional
    skip:
      - select: conv1               # select / in / where, as in prune (select defaults to **)
        in: layer2
      - where: index in [16, 20]
      - sensitive: 1%               # or sensitive: true
    target: {flops: 50%}            # one Target per key: flops, params, latency
    iterate: {steps: 4, finetune: 10}                          # or iterate: 4
    finetune: {epochs: 2, lr: 0.001, momentum: 0.9, weight_decay: 5e-4, optimizer: sgd}
    emit: torchscript               # or {format: export, path: out.pt2}

The Recipe lists statements in the order of ``ORDER`` (model, input, strategy, data, prune
entries, skip entries, targets, iterate, finetune, emit) whatever the key order in the file;
the order only shows in messages. Values that are text-form fragments (selectors, scope,
predicate, criterion, amount, model, input, strategy) are parsed with the text grammar, and
numbers go through the text form's checks, so a YAML recipe and its text twin are equal.
The document is only composed (``yaml.compose``), never constructed: node positions give
spans, and no YAML value is ever turned into a Python object by pyyaml.
"""
from __future__ import annotations

import dataclasses
import re

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pruneql.errors import RecipeError, Span
from pruneql.lang import ast
from pruneql.lang.parse import (DATA_SOURCES, EMIT_FORMATS, OPTIMIZERS, TARGET_METRICS,
                                amount, check_size, choice, criterion, display_line, fraction,
                                integer, internal_error, literal, parse_fragment, real,
                                selector)
from pruneql.lang.select import closest

_QUOTE_HINT = ("in YAML, quote values that start with * & ! { [ | > % @ or hold ': ' "
               "or ' #', e.g. select: \"**\"")
# pyyaml's line breaks, so that our line numbers and its marks agree
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"


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

    def number_text(self, node: Node, what: str) -> str:
        return self.scalar(node, what).strip()

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
    close = closest(name, keys, 1)
    hint = (f"did you mean '{close[0]}'? " if close else "") + "keys: " + ", ".join(keys)
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


def _input(doc: _Document, key: Node, value: Node) -> list:
    span = doc.span(key, value)
    if isinstance(value, SequenceNode):
        dims = tuple(integer(doc.number_text(d, "an input dimension"), doc.span(d),
                             "every input dimension") for d in value.value)
        if not dims:
            raise RecipeError("input needs at least one dimension", doc.span(value),
                              "e.g. input: [3, 32, 32]")
        return [ast.InputStmt(dims, span)]
    return [_replace_span(doc.fragment(value, "input ", "input", "input"), span)]


def _data(doc: _Document, key: Node, value: Node) -> list:
    span = doc.span(key, value)
    if isinstance(value, ScalarNode):
        return [ast.Data(_choose(doc, value, DATA_SOURCES, "data source"), span=span)]
    given = doc.mapping(value, "data", ("source", "path", "batch", "val"),
                        "data: {source: npz, path: train.npz, batch: 64}")
    if "source" not in given:
        raise RecipeError("data needs a source", doc.span(value),
                          "one of " + ", ".join(DATA_SOURCES))
    path = given.get("path")
    batch, val = given.get("batch"), given.get("val")
    return [ast.Data(
        _choose(doc, given["source"][1], DATA_SOURCES, "data source"),
        None if path is None else doc.scalar(path[1], "data path"),
        None if batch is None else _integer(doc, batch[1], "batch"),
        None if val is None else float(fraction(doc.number_text(val[1], "val"),
                                                doc.span(val[1]), "val", low_open=False,
                                                high_open=True)),
        span)]


def _targets(doc: _Document, key: Node, value: Node) -> list:
    given = doc.mapping(value, "target", TARGET_METRICS, "target: {flops: 50%}")
    out = []
    for metric, (name, amount_node) in given.items():
        kept = fraction(doc.number_text(amount_node, f"target {metric}"),
                        doc.span(amount_node), f"target {metric}")
        out.append(ast.Target(metric, float(kept), doc.span(name, amount_node)))
    return out


def _iterate(doc: _Document, key: Node, value: Node) -> list:
    span = doc.span(key, value)
    if isinstance(value, ScalarNode):
        return [ast.Iterate(_integer(doc, value, "iterate steps"), span=span)]
    given = doc.mapping(value, "iterate", ("steps", "finetune"),
                        "iterate: {steps: 4, finetune: 10}")
    if "steps" not in given:
        raise RecipeError("iterate needs steps", doc.span(value), "e.g. iterate: {steps: 4}")
    finetune = given.get("finetune")
    return [ast.Iterate(_integer(doc, given["steps"][1], "iterate steps"),
                        None if finetune is None else
                        _integer(doc, finetune[1], "finetune steps", minimum=0), span)]


def _finetune(doc: _Document, key: Node, value: Node) -> list:
    given = doc.mapping(value, "finetune",
                        ("epochs", "lr", "momentum", "weight_decay", "optimizer"),
                        "finetune: {epochs: 2, lr: 0.01}")
    if "epochs" not in given:
        raise RecipeError("finetune needs epochs", doc.span(value), "e.g. finetune: {epochs: 2}")
    options = {name: _finetune_option(doc, name, node) for name, (_, node) in given.items()}
    return [ast.Finetune(options.pop("epochs"), **options,
                         span=doc.span(key, value))]


def _finetune_option(doc: _Document, name: str, node: Node):
    if name == "epochs":
        return _integer(doc, node, "epochs")
    if name == "optimizer":
        return _choose(doc, node, OPTIMIZERS, "optimizer")
    text, span = doc.number_text(node, name), doc.span(node)
    if name == "momentum":
        return float(fraction(text, span, "momentum", low_open=False, high_open=True))
    return real(text, span, name, positive=name == "lr")


def _emit(doc: _Document, key: Node, value: Node) -> list:
    span = doc.span(key, value)
    if isinstance(value, ScalarNode):
        return [ast.Emit(_choose(doc, value, EMIT_FORMATS, "emit format"), span=span)]
    given = doc.mapping(value, "emit", ("format", "path"), "emit: {format: export, path: out.pt2}")
    if "format" not in given:
        raise RecipeError("emit needs a format", doc.span(value),
                          "one of " + ", ".join(EMIT_FORMATS))
    path = given.get("path")
    return [ast.Emit(_choose(doc, given["format"][1], EMIT_FORMATS, "emit format"),
                     None if path is None else doc.scalar(path[1], "emit path"), span)]


def _integer(doc: _Document, node: Node, what: str, minimum: int = 1) -> int:
    return integer(doc.number_text(node, what), doc.span(node), what, minimum)


def _choose(doc: _Document, node: Node, options: tuple, what: str) -> str:
    return choice(doc.scalar(node, what), options, what, doc.span(node))


# ---- prune and skip entries ------------------------------------------------------------------

_PRUNE_KEYS = ("select", "in", "where", "by", "keep", "remove", "channels", "round")
_SKIP_KEYS = ("select", "in", "where", "sensitive")
_AMOUNT_KEYS = ("keep", "remove", "channels")


def _prunes(doc: _Document, key: Node, value: Node) -> list:
    items = doc.sequence(value, "prune", "prune: [{select: conv1, by: l1, keep: 0.5}]")
    return [_prune(doc, item) for item in items]


def _prune(doc: _Document, item: Node) -> ast.Prune:
    given = doc.mapping(item, "a prune entry", _PRUNE_KEYS, "{select: conv1, by: l1, keep: 0.5}")
    for needed in ("select", "by"):
        if needed not in given:
            raise RecipeError(f"a prune entry needs '{needed}'", doc.span(item),
                              "e.g. {select: conv1, by: l1, keep: 0.5}")
    rnd = given.get("round")
    return ast.Prune(_selectors(doc, given["select"][1]), _criterion(doc, given["by"][1]),
                     _amount(doc, item, given), *_scope_where(doc, given),
                     None if rnd is None else _integer(doc, rnd[1], "round"), doc.span(item))


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
    selectors = (ast.Selector("**", doc.span(item)),) if select is None else \
        _selectors(doc, select[1])
    return ast.Skip(selectors, *_scope_where(doc, given), span=doc.span(item))


def _skip_sensitive(doc: _Document, item: Node, given: dict) -> ast.Skip:
    others = sorted(set(given) - {"sensitive"})
    key, value = given["sensitive"]
    if others:
        raise RecipeError(f"sensitive cannot be combined with {', '.join(others)}",
                          doc.span(key), "give it an entry of its own: - sensitive: 1%")
    if isinstance(value, ScalarNode) and value.tag == _BOOL:
        if value.value.lower() not in ("true", "yes", "on"):
            raise RecipeError("sensitive: false skips nothing", doc.span(value),
                              "remove the entry, or write sensitive: true or sensitive: 1%")
        return ast.Skip(sensitive=True, span=doc.span(item))
    threshold = fraction(doc.number_text(value, "sensitive"), doc.span(value),
                         "sensitive threshold", low_open=False)
    return ast.Skip(sensitive=True, threshold=float(threshold), span=doc.span(item))


def _selectors(doc: _Document, node: Node) -> tuple:
    if not isinstance(node, SequenceNode):
        return doc.fragment(node, "", "selectors", "select")
    if not node.value:
        raise RecipeError("select needs at least one selector", doc.span(node))
    # one glob per item: checked by Glob alone, which is much faster than a parse per item
    return tuple(selector(doc.scalar(item, "a selector").strip(), doc.span(item))
                 for item in node.value)


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
    value = given[present[0]][1]
    if present[0] == "channels":
        return amount("keep", doc.number_text(value, "channels"), doc.span(value),
                      channels=True)
    return doc.fragment(value, f"{present[0]} ", "amount", present[0])


def _criterion(doc: _Document, node: Node) -> ast.Criterion:
    if not isinstance(node, MappingNode):
        return doc.fragment(node, "", "criterion", "by")
    if len(node.value) != 1:
        raise RecipeError("by takes one criterion", doc.span(node),
                          "e.g. by: {taylor: {batches: 16}} or by: taylor(batches=16)")
    name, args = node.value[0]
    word = doc.scalar(name, "a criterion name")
    return criterion(word, _arguments(doc, args, word), doc.span(name), doc.span(node))


def _arguments(doc: _Document, node: Node, name: str) -> list:
    """``{batches: 16}`` → [(name, value, span)], values typed as in the text form."""
    if isinstance(node, ScalarNode) and node.tag == _NULL:
        return []
    if not isinstance(node, MappingNode):
        raise RecipeError(f"the arguments of {name} must be a mapping, got {_kind(node)}",
                          doc.span(node), "e.g. by: {taylor: {batches: 16}}")
    return [(doc.scalar(k, "an argument name"), _argument(doc, v), doc.span(k, v))
            for k, v in node.value]


def _argument(doc: _Document, node: Node):
    text = doc.scalar(node, "an argument")
    return text if node.style is not None else literal(text.strip(), doc.span(node))


_STATEMENTS = {"model": _keyword("model"), "input": _input, "strategy": _keyword("strategy"),
               "data": _data,
               "prune": _prunes, "skip": _skips, "target": _targets, "iterate": _iterate,
               "finetune": _finetune, "emit": _emit}
ORDER = tuple(_STATEMENTS)
