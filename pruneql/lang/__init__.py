"""The recipe language: text (``.prune``) and YAML (``.yaml``/``.yml``) → one Recipe AST.

>>> parse("prune conv1 by l1 keep 0.5").statements[0].amount.value
0.5
>>> parse("prune: [{select: conv1, by: l1, keep: 0.5}]", path="r.yaml") == \\
...     parse("prune conv1 by l1 keep 0.5")
True

Whatever the input, these functions return a Recipe or raise ``RecipeError``; ``describe``
turns a node back into text:

>>> describe(parse("prune conv1 by l1 remove 10%").statements[0])
'prune conv1 by l1 remove 10%'

The modules, by role: ``ast`` (the nodes), ``grammar`` (the lark parser of
``grammars/pruneql.lark``), ``transform`` (parse tree → builder calls), ``yaml_loader``
(YAML → builder calls), ``builder`` (every statement's and option's checks, once, for both),
``values`` (values as written, and the checks), ``syntax`` (syntax errors in the user's
words), ``source`` (spans and excerpts), ``vocabulary`` (the words and usage lines),
``criteria`` and ``data_sources`` (the registries, torch-free), ``describe`` (AST → text),
``select`` (globs and predicates on names).

Note that ``pruneql.lang.parse`` and ``pruneql.lang.describe`` are the functions below, which
hide the submodules of the same names as package attributes; reach a submodule's helpers
with ``from pruneql.lang.parse import parse_fragment`` (an import statement finds the module).
"""
from __future__ import annotations

import os
from pathlib import Path

from pruneql.errors import RecipeError, Span
from pruneql.lang.ast import Recipe
from pruneql.lang.describe import describe
from pruneql.lang.parse import parse_text
from pruneql.lang.yaml_loader import parse_yaml

__all__ = ["describe", "load", "parse", "parse_text", "parse_yaml"]

TEXT_SUFFIXES = (".prune", ".pql")
YAML_SUFFIXES = (".yaml", ".yml")


def parse(source: str | bytes, path: str = "recipe") -> Recipe:
    """Parse a recipe; ``path``'s suffix picks the syntax (.yaml/.yml: YAML, else text).

    ``bytes`` are decoded as UTF-8 (a BOM is dropped).
    """
    if isinstance(source, (bytes, bytearray)):
        source = _decode(bytes(source), str(path))
    if str(path).lower().endswith(YAML_SUFFIXES):
        return parse_yaml(source, str(path))
    return parse_text(source, str(path))


def load(path: str | os.PathLike) -> Recipe:
    """Read and parse a recipe file: ``.prune``/``.pql`` text, ``.yaml``/``.yml`` YAML."""
    name = str(path)
    if not name.lower().endswith(TEXT_SUFFIXES + YAML_SUFFIXES):
        raise RecipeError(f"cannot tell the syntax of recipe file '{name}'", None,
                          "name it .prune (text) or .yaml (YAML)")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise RecipeError(f"recipe file not found: {name}", None,
                          "check the path (relative paths start at the current "
                          "directory)") from None
    except OSError as err:
        raise RecipeError(f"cannot read recipe file {name}: {err.strerror or err}", None,
                          "check that it is a readable file") from None
    return parse(data, name)


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = data[:err.start]
        line = before.count(b"\n") + 1
        column = len(before.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        start = before.rfind(b"\n") + 1
        end = data.find(b"\n", err.start)
        text = data[start:end if end >= 0 else len(data)].decode("utf-8", "replace")
        raise RecipeError(f"recipe is not valid UTF-8 (byte 0x{data[err.start]:02x})",
                          Span(line, column, column + 1, text, path),
                          "save the recipe as UTF-8") from None
