"""The lark parser of the text form, built once from ``grammars/pruneql.lark``.

>>> parser().parse("model m", start="model").data
Token('RULE', 'model')
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark
from lark.lark import PostLex

from pruneql.errors import PruneQLError

# start rules other than `start`: the YAML loader reads one value with them
FRAGMENTS = ("selectors", "scope", "where", "criterion", "amount", "model", "input", "strategy")


class _NameEverywhere(PostLex):
    """Let the contextual lexer read NAME in every state.

    A keyword then only matches a whole word (NAME's keyword check), so ``keepx`` is one
    unexpected word rather than ``keep`` followed by a stray ``x``, and ``modelx`` is an
    unknown statement rather than ``model x``.
    """

    always_accept = ("NAME",)

    def process(self, stream):
        return stream


def grammar_path() -> Path:
    """The grammar file: inside the wheel, or at the root of a source checkout."""
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
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                lexer="contextual", propagate_positions=True, maybe_placeholders=True,
                start=["start", *FRAGMENTS], postlex=_NameEverywhere())


@lru_cache(maxsize=None)
def terminal_regex(name: str) -> re.Pattern:
    """The compiled pattern of the grammar's terminal ``name``.

    >>> bool(terminal_regex("NUMBER").fullmatch("1e-3"))
    True
    """
    return re.compile(parser().get_terminal(name).pattern.to_regexp())


def keyword_of(name: str) -> str | None:
    """The word a keyword terminal stands for (``KEEP`` → ``keep``), else None.

    >>> keyword_of("KEEP"), keyword_of("NUMBER")
    ('keep', None)
    """
    pattern = parser().get_terminal(name).pattern
    return pattern.value if pattern.type == "str" and pattern.value.isidentifier() else None
