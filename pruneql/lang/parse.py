"""The text form of recipes (``.prune``) → the Recipe AST, with lark.

>>> recipe = parse_text("model vgg16_cifar; prune conv1, conv{8..13} by l1 keep 0.5")
>>> recipe.first(ast.Prune).amount
Amount(kind='fraction', value=0.5)

The grammar lives in ``grammars/pruneql.lark``. Every node keeps the span of its source.
Whatever the input, ``parse_text`` returns a Recipe or raises ``RecipeError``: syntax
errors become messages in the user's words, with the offending token under a caret.

The helpers in the "values" section turn the text of numbers, amounts and criteria into
checked AST values; the YAML loader shares them (and ``parse_fragment``), so both syntaxes
accept and reject exactly the same things with the same messages.
"""
from __future__ import annotations

import decimal
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.lark import PostLex

from pruneql.errors import PruneQLError, RecipeError, Span
from pruneql.lang import ast
from pruneql.lang.select import Glob, closest

STATEMENTS = ("model", "input", "strategy", "prune", "skip", "target", "data", "iterate",
              "finetune", "emit")
TARGET_METRICS = ("flops", "latency", "params")
DATA_SOURCES = ("cifar10", "digits", "imagefolder", "npz", "python")
OPTIMIZERS = ("adam", "sgd")
EMIT_FORMATS = ("export", "onnx", "torchscript")
USAGE = {
    "model": "model NAME, a zoo name (vgg16_cifar) or pkg.module:factory",
    "input": "input 3x32x32",
    "strategy": "strategy independent|greedy",
    "prune": "prune SELECTORS [in SCOPE] [where PREDICATE] by CRITERION AMOUNT [round N], "
             "e.g. prune conv* in layer1 by l1 keep 0.5",
    "skip": "skip SELECTORS [in SCOPE] [where PREDICATE], skip where PREDICATE "
            "or skip sensitive [above 1%]",
    "target": "target flops|params|latency 50%",
    "data": 'data digits|npz|cifar10|imagefolder|python ["path"] [batch N] [val FRACTION]',
    "iterate": "iterate N steps [finetune K steps]",
    "finetune": "finetune epochs N [lr X] [momentum X] [weight_decay X] [optimizer sgd|adam]",
    "emit": 'emit torchscript|export|onnx ["path"]',
}
# start rules other than `start`, used by the YAML loader to read one value
FRAGMENTS = ("selectors", "scope", "where", "criterion", "amount", "model", "input", "strategy")
MAX_SOURCE_CHARS = 64 * 1024    # recipes are short; a bigger file is not one (and costs time)
MAX_PREDICATE_DEPTH = 64      # deeper `not`/`and`/`or` nesting would strain recursive consumers
_MAX_EXPONENT = 30            # |numbers| stay below 1e31 (and above 1e-61), ints stay small

Spanner = Callable[[int, int, "int | None"], Span]


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


def text_spanner(lines: list[str], path: str) -> Spanner:
    """A spanner for positions in ``lines`` (the source split at newlines)."""
    shown: dict[int, str] = {}       # a long line holds many tokens: clean it up once

    def span(line: int, column: int, end_column: int | None = None) -> Span:
        if line not in shown:
            shown[line] = display_line(lines[line - 1]) if 0 < line <= len(lines) else ""
        return Span(line, column, end_column, shown[line], path)
    return span


_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def display_line(text: str) -> str:
    """A source line safe to print under a caret: one character per source character, tabs
    as spaces, control characters (terminal escapes) and lone surrogates as U+FFFD."""
    return _UNPRINTABLE.sub("\ufffd", text.rstrip("\r").replace("\t", " "))


def check_size(source: str, path: str):
    """Refuse sources over MAX_SOURCE_CHARS: no recipe is that long, and parsing costs time."""
    if len(source) > MAX_SOURCE_CHARS:
        raise RecipeError(f"recipe too large: {path} has {len(source)} characters (the limit "
                          f"is {MAX_SOURCE_CHARS})", None,
                          "is this the right file? recipes are a few lines long")


def internal_error(exc: Exception) -> RecipeError:
    return RecipeError(f"internal error while reading the recipe: {type(exc).__name__}: "
                       f"{_quote(str(exc), 80)}", None,
                       "this is a bug in PruneQL; please report it with the recipe")


# ---- the parser -----------------------------------------------------------------------------

class _NameEverywhere(PostLex):
    """Let the contextual lexer read NAME in every state.

    A keyword then only matches a whole word (NAME's keyword check), so ``keepx`` is one
    unexpected word rather than ``keep`` followed by a stray ``x``, and ``modelx`` is an
    unknown statement rather than ``model x``.
    """

    always_accept = ("NAME",)

    def process(self, stream):
        return stream


def _grammar_path() -> Path:
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "grammars" / "pruneql.lark",          # inside the wheel
                      package.parent / "grammars" / "pruneql.lark"):  # a source checkout
        if candidate.is_file():
            return candidate
    raise PruneQLError("the PruneQL grammar (grammars/pruneql.lark) is missing",
                       hint="reinstall PruneQL")


@lru_cache(maxsize=None)
def parser() -> Lark:
    """The one Lark instance (LALR, contextual lexer, positions on every node)."""
    return Lark(_grammar_path().read_text(encoding="utf-8"), parser="lalr",
                lexer="contextual", propagate_positions=True, maybe_placeholders=True,
                start=["start", *FRAGMENTS], postlex=_NameEverywhere())


@lru_cache(maxsize=None)
def _terminal_regex(name: str) -> re.Pattern:
    return re.compile(parser().get_terminal(name).pattern.to_regexp())


def _run(text: str, start: str, spanner: Spanner):
    _check_nesting(text, spanner)
    try:
        tree = parser().parse(text, start=start)
    except UnexpectedInput as err:
        end = "the end of the statement" if start == "start" else "the end of the value"
        raise _syntax_error(err, text.split("\n"), spanner, end) from None
    try:
        return _Builder(spanner).transform(tree)
    except VisitError as err:       # lark wraps what the builder raises
        raise err.orig_exc from None


_NESTING = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|[()]")


def _check_nesting(text: str, spanner: Spanner):
    """Refuse absurdly deep parentheses before lark spends time on them."""
    depth = 0
    for found in _NESTING.finditer(text):
        if found.group() == "(":
            depth += 1
            if depth > MAX_PREDICATE_DEPTH:
                pos = found.start()
                line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
                raise RecipeError(f"parentheses nested too deeply (more than "
                                  f"{MAX_PREDICATE_DEPTH} levels)",
                                  spanner(line, column, column + 1))
        elif found.group() == ")":
            depth = max(0, depth - 1)


# ---- syntax errors ----------------------------------------------------------------------------

_DESCRIBED = {"GLOB": "a layer name or glob", "NAME": "a name", "NUMBER": "a number",
              "PERCENT": "a percentage", "STRING": "a quoted string",
              "SHAPE": "a shape such as 3x32x32", "MODEL_REF": "a model name",
              "CMP": "a comparison (== != < <= > >=)"}
_ENDS = ("_SEP", "$END")
_GLOB_CHAR = re.compile(r"[A-Za-z0-9_.*{}/]")
_WORD_END = re.compile(r"[^\s;#]*")


def _syntax_error(err: UnexpectedInput, lines: list[str], spanner: Spanner,
                  end: str) -> RecipeError:
    """A RecipeError for lark's error; ``end`` names the end of input in the expected list."""
    if isinstance(err, UnexpectedToken):
        return _unexpected_token(err, lines, spanner, end)
    if isinstance(err, UnexpectedCharacters):
        return _unexpected_character(err, lines, spanner, end)
    line, column = getattr(err, "line", 1), getattr(err, "column", 1)
    return RecipeError("unexpected end of input", spanner(line, column, None))


def _expected(err: UnexpectedInput) -> set[str]:
    """Terminals that would let the parser go on where it failed.

    Asked of lark's interactive parser first: the raw LALR table also lists the end of
    input wherever a YAML fragment rule (say ``criterion``) could end, even inside a
    statement. The interactive parser never accepts the end of input itself, so the table
    is the fallback when it finds nothing; a parser with nothing left to take (a complete
    YAML fragment) is waiting for the end.
    """
    names: set[str] = set()
    if getattr(err, "interactive_parser", None) is not None:
        names = set(err.interactive_parser.accepts())
    if not names:
        names = set(getattr(err, "expected", None) or getattr(err, "allowed", None) or ())
    names = {n for n in names if n.isupper() and not n.startswith("__") and n != "COMMENT"}
    return names or {"$END"}


def _describe(name: str, end: str) -> str:
    if name in _ENDS:
        return end
    if name in _DESCRIBED:
        return _DESCRIBED[name]
    return f"'{parser().get_terminal(name).pattern.value}'"


def _keywords(expected: Iterable[str]) -> list[str]:
    patterns = [parser().get_terminal(n).pattern for n in expected
                if n not in _DESCRIBED and n not in _ENDS]
    return sorted(p.value for p in patterns if p.type == "str" and p.value.isidentifier())


def _or_list(expected: set[str], end: str) -> str:
    """``; expected 'a', 'b' or c`` for a message (empty when nothing is known)."""
    words = sorted({_describe(n, end) for n in expected},
                   key=lambda w: (not w.startswith("'"), w == end, w))
    if not words:
        return ""
    return "; expected " + (words[0] if len(words) == 1 else
                            ", ".join(words[:-1]) + " or " + words[-1])


def _quote(text: str, width: int = 40) -> str:
    text = text if len(text) <= width else text[:width - 3] + "..."
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _unexpected_token(err: UnexpectedToken, lines: list[str], spanner: Spanner,
                      end: str) -> RecipeError:
    tok, expected = err.token, _expected(err)
    if tok.type == "$END":        # lark places it on the last token; point just after it
        line, column = tok.end_line or tok.line or 1, tok.end_column or tok.column or 1
        span = spanner(line, column, column + 1)
    else:
        line, column = tok.line, tok.column
        span = spanner(line, column, tok.end_column if tok.end_line == line else None)
    seen = _seen(tok)
    if {"MODEL", "PRUNE"} <= expected:
        return _unknown_statement(tok, seen, span)
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    hint = _token_hint(tok, expected, text, column)
    return RecipeError(f"unexpected {seen}{_or_list(expected, end)}", span, hint)


def _seen(tok: Token) -> str:
    """How an unexpected token reads in a message."""
    if tok.type == "$END":
        return "end of input"
    if tok.type == "_SEP" and tok.value != ";":
        return "end of line"
    return f"'{_quote(tok.value)}'"


def _unknown_statement(tok: Token, seen: str, span: Span) -> RecipeError:
    known = "a statement starts with one of: " + ", ".join(STATEMENTS)
    if tok.type not in ("NAME", "GLOB", "MODEL_REF"):
        return RecipeError(f"unexpected {seen}; expected a statement", span, known)
    close = closest(tok.value, STATEMENTS, 1)
    hint = (f"did you mean '{close[0]}'? " if close else "") + known
    return RecipeError(f"unknown statement {seen}", span, hint)


def _token_hint(tok: Token, expected: set[str], line: str, column: int) -> str | None:
    word = tok.value if tok.type not in ("$END", "_SEP") else ""
    close = closest(word, _keywords(expected), 1) if word.isidentifier() else []
    if close and close[0] != word:
        return f"did you mean '{close[0]}'?"
    if word == "=" and "CMP" in expected:
        return "compare with '=='"
    if word in ("keep", "remove") and "BY" in expected:
        return "name a criterion before the amount: by l1 keep 0.5"
    statement = _statement_word(line, column)
    return f"usage: {USAGE[statement]}" if statement in USAGE else None


def _statement_word(line: str, column: int) -> str | None:
    """The first word of the statement that holds ``column`` on ``line``."""
    words = line[:column - 1].rsplit(";", 1)[-1].split()
    return words[0] if words else None


def _unexpected_character(err: UnexpectedCharacters, lines: list[str], spanner: Spanner,
                          end: str) -> RecipeError:
    line, column, char = err.line, err.column, err.char
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    span = spanner(line, column, column + 1)
    expected = _expected(err)
    after_glob = column > 1 and _GLOB_CHAR.match(text[column - 2]) is not None
    if char in "{}" and ("GLOB" in expected or after_glob):
        return RecipeError(f"unbalanced brace in selector '{_quote(_word_at(text, column))}'",
                           span, "braces hold alternatives or a range and close within the "
                                 "selector: conv{1,2} or conv{8..13}")
    if char in "\"'":
        return RecipeError("unterminated string", span,
                           f"close the string with {char} on the same line")
    shown = f"'{char}'" if char.isprintable() else f"U+{ord(char):04X}"
    statement = _statement_word(text, column)
    return RecipeError(f"unexpected character {shown}{_or_list(expected, end)}", span,
                       f"usage: {USAGE[statement]}" if statement in USAGE else None)


def _word_at(text: str, column: int) -> str:
    """The selector-like run of characters around ``column`` (1-based)."""
    start = column - 1
    while start > 0 and _GLOB_CHAR.match(text[start - 1]):
        start -= 1
    return text[start:_WORD_END.match(text, column - 1).end()]


# ---- values (shared with the YAML loader) --------------------------------------------------

def to_decimal(text: str, span: Span | None) -> Decimal:
    """The value of a number or percentage (``50%`` → 0.5), exactly.

    >>> to_decimal("66%", None)
    Decimal('0.66')
    """
    percent = text.endswith("%")
    body = text[:-1] if percent else text
    if not _terminal_regex("NUMBER").fullmatch(body):
        raise RecipeError(f"expected a number, got '{_quote(text)}'", span,
                          "numbers look like 16, 0.5, 1e-3 or 50%")
    try:
        value = Decimal(body)
        if value and not -2 * _MAX_EXPONENT <= value.adjusted() <= _MAX_EXPONENT:
            raise decimal.Overflow
        return value / 100 if percent else value
    except decimal.DecimalException:
        raise RecipeError(f"number out of range: {_quote(text)}", span) from None


def to_number(text: str, span: Span | None) -> int | float:
    """An int for ``16``, a float for ``1e-3``, ``0.5`` or ``50%``."""
    value = to_decimal(text, span)
    if _INTEGER.fullmatch(text):
        return int(value)
    return float(value)


_INTEGER = re.compile(r"-?[0-9]+")


def integer(text: str, span: Span | None, what: str, minimum: int = 1) -> int:
    """A whole number >= ``minimum`` (1: positive, 0: non-negative)."""
    value = to_number(text, span)
    if isinstance(value, float) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise RecipeError(f"{what} must be {kind}, got {_quote(text)}", span)
    return value


def fraction(text: str, span: Span | None, what: str, *, low_open: bool = True,
             high_open: bool = False) -> Decimal:
    """A number or percentage in (0, 1] (bounds open or closed as asked)."""
    value = to_decimal(text, span)
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if low_ok and high_ok:
        return value
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    hint = f"write {text}% for a percentage" if value > 1 and _INTEGER.fullmatch(text) else None
    raise RecipeError(f"{what} must be in {interval}, got {_quote(text)}", span, hint)


def real(text: str, span: Span | None, what: str, *, positive: bool) -> float:
    """A float > 0 (``positive``) or >= 0."""
    value = to_decimal(text, span)
    if value > 0 or (value == 0 and not positive):
        return float(value)
    raise RecipeError(f"{what} must be {'positive' if positive else 'non-negative'}, "
                      f"got {_quote(text)}", span)


def choice(word: str, options: Iterable[str], what: str, span: Span | None) -> str:
    """``word`` if it is one of ``options``; else an error suggesting the closest."""
    options = tuple(options)
    if word in options:
        return word
    close = closest(word, options, 1, cutoff=0.5)     # short names: l3 is one edit from l1
    hint = (f"did you mean '{close[0]}'? " if close else "") + "one of " + ", ".join(options)
    raise RecipeError(f"unknown {what} '{_quote(word)}'", span, hint)


def shape(text: str, span: Span | None) -> tuple:
    """``3x32x32`` → (3, 32, 32)."""
    return tuple(integer(part, span, "every input dimension") for part in text.split("x"))


def literal(text: str, span: Span | None):
    """A bare argument value as the text form reads it: a number, a percentage (→ fraction),
    true / false, or else the word itself.

    >>> literal("16", None), literal("70%", None), literal("true", None), literal("mean", None)
    (16, 0.7, True, 'mean')
    """
    if text in ("true", "false"):
        return text == "true"
    if _terminal_regex("PERCENT").fullmatch(text):
        return float(to_decimal(text, span))
    if _terminal_regex("NUMBER").fullmatch(text):
        return to_number(text, span)
    return text


def selector(pattern: str, span: Span | None) -> ast.Selector:
    """A checked Selector: braces, ranges and characters are validated by Glob."""
    Glob(pattern, span)
    return ast.Selector(pattern, span)


def unquote(text: str) -> str:
    """The value of a STRING token: quotes off, ``\\"`` ``\\'`` and ``\\\\`` unescaped."""
    return re.sub(r"\\([\"'\\])", r"\1", text[1:-1])


def amount(verb: str, text: str, span: Span | None, channels: bool = False) -> ast.Amount:
    """``keep 0.66`` | ``keep 66%`` | ``remove 34%`` | ``keep 48 channels`` → Amount.

    >>> amount("remove", "34%", None)
    Amount(kind='fraction', value=0.66)
    """
    if channels:
        return ast.Amount("channels", integer(text, span, "a channel count"), span)
    if verb == "keep":
        kept = _checked(text, span, "keep", low_open=True, high_open=False)
    else:
        kept = 1 - _checked(text, span, "remove", low_open=False, high_open=True)
    return ast.Amount("fraction", float(kept), span)


def _checked(text: str, span: Span | None, verb: str, **bounds) -> Decimal:
    try:
        return fraction(text, span, verb, **bounds)
    except RecipeError as err:
        if err.hint is None:
            err.hint = f"{verb} is the fraction of channels to {verb}: {verb} 0.3 or {verb} 30%"
        elif verb == "keep" and _INTEGER.fullmatch(text):
            err.hint += f", or 'keep {text} channels' for a channel count"
        raise


# ---- criteria ---------------------------------------------------------------------------------

def _count(value, what: str, span: Span | None):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise RecipeError(f"{what} must be a positive integer, got {_show(value)}", span)


def _seed(value, what: str, span: Span | None):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise RecipeError(f"{what} must be a non-negative integer, got {_show(value)}", span)


def _rate(value, what: str, span: Span | None):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise RecipeError(f"{what} must be a non-negative number, got {_show(value)}", span)


def _share(value, what: str, span: Span | None):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1:
        return float(value)
    raise RecipeError(f"{what} must be a fraction in (0, 1), got {_show(value)}", span,
                      "e.g. 0.7 or 70%")


def _stat(value, what: str, span: Span | None):
    if value in ("mean", "std"):
        return value
    raise RecipeError(f"{what} must be mean or std, got {_show(value)}", span)


CRITERION_ARGS = {
    "activation": {"batches": _count, "stat": _stat},
    "ensemble": {"batches": _count, "keep": _share, "samples": _count},
    "l1": {},
    "l2": {},
    "oracle": {"batches": _count},
    "random": {"seed": _seed},
    "taylor": {"batches": _count, "flops_reg": _rate},
}


def _show(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"'{_quote(value)}'" if isinstance(value, str) else repr(value)


def criterion(name: str, args: list, name_span: Span | None,
              span: Span | None) -> ast.Criterion:
    """Check a criterion and its ``(name, value, span)`` arguments; build the node.

    >>> criterion("taylor", [("batches", 16, None)], None, None)
    Criterion(name='taylor', args=(('batches', 16),))
    """
    choice(name, ast.CRITERIA, "criterion", name_span)
    allowed, seen = CRITERION_ARGS[name], {}
    for arg, value, arg_span in args:
        if arg not in allowed:
            raise RecipeError(f"unknown argument '{_quote(arg)}' for {name}", arg_span,
                              _argument_hint(name, arg))
        if arg in seen:
            raise RecipeError(f"argument '{arg}' given twice", arg_span)
        seen[arg] = allowed[arg](value, f"{name}({arg}=...)", arg_span)
    return ast.Criterion(name, tuple(sorted(seen.items())), span)


def _argument_hint(name: str, arg: str) -> str:
    allowed = sorted(CRITERION_ARGS[name])
    if not allowed:
        return f"{name} takes no arguments"
    close = closest(arg, allowed, 1)
    return (f"did you mean '{close[0]}'? " if close else "") + \
        f"{name} takes {', '.join(allowed)}"


# ---- predicates -------------------------------------------------------------------------------

def _check_attribute(attr: Token, span_of) -> str:
    return choice(str(attr), ast.ATTRIBUTES, "attribute", span_of(attr))


def _check_value(attr: str, op: str, value, span: Span | None):
    """``kind`` compares with names by == / != / in; the other attributes with numbers."""
    if attr == "kind":
        if not isinstance(value, str):
            raise RecipeError(f"kind is a layer kind such as conv or linear, got {value!r}",
                              span)
        if op not in ("==", "!=", "in"):
            raise RecipeError(f"kind can only be compared with ==, != or in, not {op}", span)
    elif isinstance(value, str):
        raise RecipeError(f"{attr} is a number, got '{_quote(value)}'", span)
    return value


def check_depth(pred, span: Span | None):
    """Refuse predicates nested deeper than MAX_PREDICATE_DEPTH (walked without recursion)."""
    stack, deepest = [(pred, 1)], 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_PREDICATE_DEPTH:
            raise RecipeError(f"predicate nested too deeply (more than "
                              f"{MAX_PREDICATE_DEPTH} levels)", span,
                              "split it across several statements")
        if isinstance(node, (ast.And, ast.Or)):
            stack += [(node.left, depth + 1), (node.right, depth + 1)]
        elif isinstance(node, ast.Not):
            stack.append((node.operand, depth + 1))
    return pred


# ---- the tree → AST -------------------------------------------------------------------------

@v_args(meta=True)
class _Builder(Transformer_NonRecursive):
    """One method per grammar rule; non-recursive, so deep input cannot overflow the stack."""

    def __init__(self, spanner: Spanner):
        super().__init__()
        self._spanner = spanner

    # -- spans and tokens

    def _span(self, meta) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        end = meta.end_column if meta.end_line == meta.line else None
        return self._spanner(meta.line, meta.column, end)

    def _tspan(self, tok: Token) -> Span:
        end = tok.end_column if tok.end_line == tok.line else None
        return self._spanner(tok.line, tok.column, end)

    def _value(self, tok: Token):
        """A predicate value token → int, float or str."""
        if tok.type == "NUMBER":
            return to_number(str(tok), self._tspan(tok))
        return unquote(str(tok)) if tok.type == "STRING" else str(tok)

    # -- statements

    def start(self, meta, children):
        return children

    def model(self, meta, children):
        return ast.ModelStmt(str(children[0]), self._span(meta))

    def input(self, meta, children):
        return ast.InputStmt(shape(str(children[0]), self._tspan(children[0])),
                             self._span(meta))

    def strategy(self, meta, children):
        return ast.StrategyStmt(str(children[-1]), self._span(meta))

    def prune(self, meta, children):
        selectors, scope, where, crit, amt, rnd = children
        return ast.Prune(selectors, crit, amt, scope, where, rnd, self._span(meta))

    def skip(self, meta, children):
        selectors, scope, where = children
        return ast.Skip(selectors, scope, where, span=self._span(meta))

    def skip_where(self, meta, children):
        span = self._span(meta)
        return ast.Skip((ast.Selector("**", span),), where=children[0], span=span)

    def skip_sensitive(self, meta, children):
        above = children[0]
        threshold = None if above is None else float(
            fraction(str(above), self._tspan(above), "sensitive threshold", low_open=False))
        return ast.Skip(sensitive=True, threshold=threshold, span=self._span(meta))

    def target(self, meta, children):
        metric, value = str(children[0]), children[1]
        kept = fraction(str(value), self._tspan(value), f"target {metric}")
        return ast.Target(metric, float(kept), self._span(meta))

    def data(self, meta, children):
        source, path, *options = children
        given = _options(options)
        return ast.Data(str(source), None if path is None else unquote(str(path)),
                        given.get("batch"), given.get("val"), self._span(meta))

    def iterate(self, meta, children):
        steps, finetune = children
        return ast.Iterate(
            integer(str(steps), self._tspan(steps), "iterate steps"),
            None if finetune is None else
            integer(str(finetune), self._tspan(finetune), "finetune steps", minimum=0),
            self._span(meta))

    def finetune(self, meta, children):
        epochs, *options = children
        given = _options(options)
        return ast.Finetune(integer(str(epochs), self._tspan(epochs), "epochs"),
                            given.get("lr"), given.get("momentum"), given.get("weight_decay"),
                            given.get("optimizer"), self._span(meta))

    def emit(self, meta, children):
        fmt, path = children
        return ast.Emit(str(fmt), None if path is None else unquote(str(path)),
                        self._span(meta))

    # -- keyword choices (rules marked ! in the grammar keep their words)

    def target_metric(self, meta, children):
        return children[-1]

    def data_source(self, meta, children):
        return children[-1]

    def optimizer_name(self, meta, children):
        return children[-1]

    def emit_format(self, meta, children):
        return children[-1]

    # -- options: (name, checked value, span)

    def batch(self, meta, children):
        tok = children[0]
        return "batch", integer(str(tok), self._tspan(tok), "batch"), self._span(meta)

    def val(self, meta, children):
        tok = children[0]
        share = fraction(str(tok), self._tspan(tok), "val", low_open=False, high_open=True)
        return "val", float(share), self._span(meta)

    def lr(self, meta, children):
        tok = children[0]
        return "lr", real(str(tok), self._tspan(tok), "lr", positive=True), self._span(meta)

    def momentum(self, meta, children):
        tok = children[0]
        value = fraction(str(tok), self._tspan(tok), "momentum", low_open=False,
                         high_open=True)
        return "momentum", float(value), self._span(meta)

    def weight_decay(self, meta, children):
        tok = children[0]
        value = real(str(tok), self._tspan(tok), "weight_decay", positive=False)
        return "weight_decay", value, self._span(meta)

    def optimizer(self, meta, children):
        return "optimizer", str(children[0]), self._span(meta)

    # -- selectors, criterion, amount

    def selectors(self, meta, children):
        return tuple(self._selector(tok) for tok in children)

    def scope(self, meta, children):
        return self._selector(children[0])

    def _selector(self, tok: Token) -> ast.Selector:
        return selector(str(tok), self._tspan(tok))

    def round(self, meta, children):
        return integer(str(children[0]), self._tspan(children[0]), "round")

    def criterion(self, meta, children):
        name, args = children
        return criterion(str(name), args or [], self._tspan(name), self._span(meta))

    def arguments(self, meta, children):
        return children

    def argument(self, meta, children):
        name, value = children
        typed = unquote(str(value)) if value.type == "STRING" else \
            literal(str(value), self._tspan(value))
        return str(name), typed, self._span(meta)

    def keep(self, meta, children):
        return amount("keep", str(children[0]), self._span(meta))

    def remove(self, meta, children):
        return amount("remove", str(children[0]), self._span(meta))

    def keep_channels(self, meta, children):
        return amount("keep", str(children[0]), self._span(meta), channels=True)

    # -- predicates

    def where(self, meta, children):
        return check_depth(children[0], self._span(meta))

    def or_(self, meta, children):
        return ast.Or(children[0], children[1], self._span(meta))

    def and_(self, meta, children):
        return ast.And(children[0], children[1], self._span(meta))

    def not_(self, meta, children):
        return ast.Not(children[0], self._span(meta))

    def compare(self, meta, children):
        attr, op, value = children
        name, span = _check_attribute(attr, self._tspan), self._span(meta)
        return ast.Compare(name, str(op), _check_value(name, str(op), self._value(value), span),
                           span)

    def in_list(self, meta, children):
        return self._in_list(meta, children, negate=False)

    def not_in_list(self, meta, children):
        return self._in_list(meta, children, negate=True)

    def _in_list(self, meta, children, negate: bool) -> ast.InList:
        attr, values = children
        name, span = _check_attribute(attr, self._tspan), self._span(meta)
        checked = tuple(_check_value(name, "in", self._value(v), span) for v in values)
        return ast.InList(name, checked, negate, span)

    def list(self, meta, children):
        return children


def _options(options: list) -> dict:
    """(name, value, span) options → {name: value}; an option given twice is an error."""
    given = {}
    for name, value, span in options:
        if name in given:
            raise RecipeError(f"{name} given twice", span)
        given[name] = value
    return given
