"""The text form of recipes (``.prune``) → the Recipe AST, with lark.

>>> recipe = parse_text("model vgg16_cifar; prune conv1, conv{8..13} by l1 keep 0.5")
>>> recipe.first(ast.Prune).amount
Amount(kind='fraction', value=0.5, unit='channels')

The pieces, by role: ``grammar`` (the lark parser of ``grammars/pruneql.lark``),
``transform`` (parse tree → builder calls), ``builder`` (every check, shared with the YAML
loader), ``syntax`` (syntax errors in the user's words), ``values`` (numbers and checks),
``source`` (spans and excerpts). Whatever the input, ``parse_text`` returns a Recipe or
raises ``RecipeError``.

The names below the imports are kept importable from here for older callers.
"""
from __future__ import annotations

from lark.exceptions import UnexpectedInput, VisitError

from pruneql.errors import RecipeError
from pruneql.lang import ast
from pruneql.lang.criteria import CRITERIA as _REGISTRY
from pruneql.lang.grammar import FRAGMENTS, parser
from pruneql.lang.source import (MAX_PREDICATE_DEPTH, MAX_SOURCE_CHARS, Spanner, check_size,
                                 display_line, internal_error, text_spanner)
from pruneql.lang.syntax import END_OF_STATEMENT, END_OF_VALUE, check_nesting, syntax_error
from pruneql.lang.transform import ToAst
from pruneql.lang.vocabulary import (DATA_SOURCES, EMIT_FORMATS, OPTIMIZERS, STATEMENTS,
                                     TARGET_METRICS, USAGE)

__all__ = ["CRITERION_ARGS", "DATA_SOURCES", "EMIT_FORMATS", "FRAGMENTS", "MAX_PREDICATE_DEPTH",
           "MAX_SOURCE_CHARS", "OPTIMIZERS", "STATEMENTS", "TARGET_METRICS", "USAGE",
           "check_size", "display_line", "internal_error", "parse_fragment", "parse_text",
           "parser", "text_spanner"]

# criterion → {argument: check}, derived from the registry in pruneql.lang.criteria
CRITERION_ARGS = {name: {a.name: a.check for a in _REGISTRY[name].arguments}
                  for name in _REGISTRY.names}


def parse_text(source: str, path: str = "recipe") -> ast.Recipe:
    """Parse a text recipe into a Recipe; raise RecipeError on any problem.

    >>> parse_text("input 3x32x32; strategy greedy").statements
    (InputStmt(shape=(3, 32, 32)), StrategyStmt(name='greedy'))
    """
    if not isinstance(source, str):
        raise TypeError(f"parse_text takes a str, not {type(source).__name__}")
    source = source.removeprefix("\ufeff")
    check_size(source, path)
    try:
        statements = _run(source, "start", text_spanner(source.split("\n"), path))
    except RecipeError:
        raise
    except Exception as exc:   # the contract: a Recipe or a RecipeError, whatever the input
        raise internal_error(exc) from exc
    return ast.Recipe(tuple(statements), source=source, path=path)


def parse_fragment(text: str, start: str, spanner: Spanner):
    """Parse ``text`` from the grammar rule ``start`` (one of FRAGMENTS).

    Spans are computed by ``spanner(line, column, end_column)`` from positions in ``text``.

    >>> parse_fragment("l1", "criterion", text_spanner(["l1"], "x"))
    Criterion(name='l1', args=())
    """
    return _run(text, start, spanner)


def _run(text: str, start: str, spanner: Spanner):
    check_nesting(text, spanner)
    try:
        tree = parser().parse(text, start=start)
    except UnexpectedInput as err:
        end = END_OF_STATEMENT if start == "start" else END_OF_VALUE
        raise syntax_error(err, text.split("\n"), spanner, end) from None
    try:
        return ToAst(spanner).transform(tree)
    except VisitError as err:       # lark wraps what the builder raises
        raise err.orig_exc from None
