"""Syntax errors in the user's words: lark's exceptions → RecipeErrors with a caret and a hint.

>>> from lark.exceptions import UnexpectedInput
>>> from pruneql.lang.grammar import parser
>>> from pruneql.lang.source import text_spanner
>>> try:
...     parser().parse("strategy greed", start="start")
... except UnexpectedInput as err:
...     error = syntax_error(err, ["strategy greed"], text_spanner(["strategy greed"], "r"))
>>> error.message, error.hint
("unexpected 'greed'; expected 'greedy' or 'independent'", "did you mean 'greedy'?")
"""
from __future__ import annotations

import re
from typing import Iterable

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from pruneql.errors import RecipeError, Span
from pruneql.lang.grammar import keyword_of, parser
from pruneql.lang.source import MAX_PREDICATE_DEPTH, Spanner, quote
from pruneql.lang.suggest import closest
from pruneql.lang.vocabulary import STATEMENTS, USAGE

END_OF_STATEMENT = "the end of the statement"
END_OF_VALUE = "the end of the value"
_DESCRIBED = {"GLOB": "a layer name or glob", "NAME": "a name", "NUMBER": "a number",
              "PERCENT": "a percentage", "STRING": "a quoted string",
              "SHAPE": "a shape such as 3x32x32", "MODEL_REF": "a model name",
              "CMP": "a comparison (== != < <= > >=)"}
_ENDS = ("_SEP", "$END")
_GLOB_CHAR = re.compile(r"[A-Za-z0-9_.*{}/]")
_WORD_END = re.compile(r"[^\s;#]*")
_NESTING = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|[()]")


def check_nesting(text: str, spanner: Spanner) -> None:
    """Refuse absurdly deep parentheses before lark spends time on them.

    >>> check_nesting("skip where (index > 1)", None)
    """
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


def syntax_error(err: UnexpectedInput, lines: list[str], spanner: Spanner,
                 end: str = END_OF_STATEMENT) -> RecipeError:
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
    words = (keyword_of(n) for n in expected if n not in _DESCRIBED and n not in _ENDS)
    return sorted(w for w in words if w)


def _or_list(expected: set[str], end: str) -> str:
    """``; expected 'a', 'b' or c`` for a message (empty when nothing is known)."""
    words = sorted({_describe(n, end) for n in expected},
                   key=lambda w: (not w.startswith("'"), w == end, w))
    if not words:
        return ""
    return "; expected " + (words[0] if len(words) == 1 else
                            ", ".join(words[:-1]) + " or " + words[-1])


def _position(tok: Token) -> tuple[int, int, int | None]:
    """(line, column, end column) of a token in the parsed text."""
    if tok.type == "$END":        # lark places it on the last token; point just after it
        line, column = tok.end_line or tok.line or 1, tok.end_column or tok.column or 1
        return line, column, column + 1
    return tok.line, tok.column, tok.end_column if tok.end_line == tok.line else None


def _unexpected_token(err: UnexpectedToken, lines: list[str], spanner: Spanner,
                      end: str) -> RecipeError:
    tok, expected = err.token, _expected(err)
    line, column, end_column = _position(tok)
    span, seen = spanner(line, column, end_column), _seen(tok)
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
    return f"'{quote(tok.value)}'"


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
    return _usage(line, column)


def _usage(line: str, column: int) -> str | None:
    """``usage: ...`` of the statement that holds ``column`` on ``line``, if it is one."""
    words = line[:column - 1].rsplit(";", 1)[-1].split()
    return f"usage: {USAGE[words[0]]}" if words and words[0] in USAGE else None


def _unexpected_character(err: UnexpectedCharacters, lines: list[str], spanner: Spanner,
                          end: str) -> RecipeError:
    line, column, char = err.line, err.column, err.char
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    span = spanner(line, column, column + 1)
    expected = _expected(err)
    after_glob = column > 1 and _GLOB_CHAR.match(text[column - 2]) is not None
    if char in "{}" and ("GLOB" in expected or after_glob):
        return RecipeError(f"unbalanced brace in selector '{quote(_word_at(text, column))}'",
                           span, "braces hold alternatives or a range and close within the "
                                 "selector: conv{1,2} or conv{8..13}")
    if char in "\"'":
        return RecipeError("unterminated string", span,
                           f"close the string with {char} on the same line")
    shown = f"'{char}'" if char.isprintable() else f"U+{ord(char):04X}"
    return RecipeError(f"unexpected character {shown}{_or_list(expected, end)}", span,
                       _usage(text, column))


def _word_at(text: str, column: int) -> str:
    """The selector-like run of characters around ``column`` (1-based)."""
    start = column - 1
    while start > 0 and _GLOB_CHAR.match(text[start - 1]):
        start -= 1
    return text[start:_WORD_END.match(text, column - 1).end()]
