"""Recipe source text: size limits, printable excerpts, and spans of positions in it.

A *spanner* maps a (line, column, end column) position in the text a parser saw to a
``Span`` of the user's file; the text form's is direct, the YAML loader's shifts positions
inside a scalar back to where the scalar sits in the YAML file.
"""
from __future__ import annotations

import re
from typing import Callable

from pruneql.errors import RecipeError, Span

MAX_SOURCE_CHARS = 64 * 1024  # recipes are short; a bigger file is not one (and costs time)
MAX_PREDICATE_DEPTH = 64      # deeper `not`/`and`/`or` nesting would strain recursive consumers

Spanner = Callable[[int, int, "int | None"], Span]

_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def text_spanner(lines: list[str], path: str) -> Spanner:
    """A spanner for positions in ``lines`` (the source split at newlines).

    >>> text_spanner(["model m"], "r.prune")(1, 7, 8)
    Span(line=1, column=7, end_column=8, text='model m', path='r.prune')
    """
    shown: dict[int, str] = {}       # a long line holds many tokens: clean it up once

    def span(line: int, column: int, end_column: int | None = None) -> Span:
        if line not in shown:
            shown[line] = display_line(lines[line - 1]) if 0 < line <= len(lines) else ""
        return Span(line, column, end_column, shown[line], path)
    return span


def display_line(text: str) -> str:
    """A source line safe to print under a caret: one character per source character, tabs
    as spaces, control characters (terminal escapes) and lone surrogates as U+FFFD.

    >>> display_line("a\\tb\\x1b")
    'a b\\ufffd'
    """
    return _UNPRINTABLE.sub("\ufffd", text.rstrip("\r").replace("\t", " "))


def quote(text: str, width: int = 40) -> str:
    """``text`` cut to ``width`` characters, unprintable ones escaped, for a message.

    >>> quote("a" * 50, 10), quote("a\\x00")
    ('aaaaaaa...', 'a\\\\u0000')
    """
    text = text if len(text) <= width else text[:width - 3] + "..."
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def check_size(source: str, path: str) -> None:
    """Refuse sources over MAX_SOURCE_CHARS: no recipe is that long, and parsing costs time.

    >>> check_size("model m", "r.prune")
    """
    if len(source) > MAX_SOURCE_CHARS:
        raise RecipeError(f"recipe too large: {path} has {len(source)} characters (the limit "
                          f"is {MAX_SOURCE_CHARS})", None,
                          "is this the right file? recipes are a few lines long")


def internal_error(exc: Exception) -> RecipeError:
    """The RecipeError a parser raises for an exception it did not mean to raise.

    >>> internal_error(KeyError("x")).message
    "internal error while reading the recipe: KeyError: 'x'"
    """
    return RecipeError(f"internal error while reading the recipe: {type(exc).__name__}: "
                       f"{quote(str(exc), 80)}", None,
                       "this is a bug in PruneQL; please report it with the recipe")
