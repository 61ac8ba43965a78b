"""describe(): the text form of AST nodes, as written, and parse(describe(x)) == x for every
statement kind -- on the fixtures, on hand-picked spellings, and on generated statements."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pruneql.lang import ast, describe, load, parse_text, parse_yaml
from pruneql.lang.criteria import CRITERIA
from pruneql.lang.data_sources import SOURCES
from pruneql.lang.values import Flag, Real, Share, Whole, Word
from pruneql.lang.vocabulary import (ALLOWANCES, EMIT_FORMATS, FINETUNE_SELECT, NORMALIZATIONS,
                                     OPTIMIZERS, STRATEGIES, TARGET_METRICS, TASKS,
                                     TRACE_MODES, UNITS)

VALID = sorted((Path(__file__).parent / "fixtures" / "recipes" / "valid").glob("*.prune"))


def round_trip(stmt):
    text = describe(stmt)
    assert parse_text(text).statements == (stmt,), text
    return text


@pytest.mark.parametrize("source, text", [
    ("prune a by l1 remove 10%", "prune a by l1 remove 10%"),
    ("prune a by l1 remove 0.1", "prune a by l1 remove 0.1"),
    ("prune a by l1 keep 90%", "prune a by l1 keep 90%"),
    ("prune a by l1 keep 1", "prune a by l1 keep 1"),
    ("prune a by l1 keep 0.5 heads", "prune a by l1 keep 0.5 heads"),
    ("prune a by l1 keep 1.0 heads", "prune a by l1 keep 1.0 heads"),
    ("prune a by l1 remove 0.0 heads", "prune a by l1 remove 0.0 heads"),
    ("prune a by l1 keep 6 heads", "prune a by l1 keep 6 heads"),
    ("prune a by l1 remove 25% head_dims", "prune a by l1 remove 25% head_dims"),
    ("prune a by l1 keep 0.5 channels", "prune a by l1 keep 0.5"),
    ("prune a by l1 keep 48 channels round 8", "prune a by l1 keep 48 channels round 8"),
    ("prune a,b in c where index>1 by taylor( batches=16 ) keep 1e-1",
     "prune a, b in c where index > 1 by taylor(batches=16) keep 0.1"),
    ("prune a by ensemble(keep=70%, ridge=0) keep .5",
     "prune a by ensemble(keep=0.7, ridge=0.0) keep 0.5"),
    ("prune a by activation(stat='std') keep 0.5", "prune a by activation(stat=std) keep 0.5"),
    ("prune a by oracle(signed=false) keep 0.5", "prune a by oracle(signed=false) keep 0.5"),
    ("skip where not (index == 1 or kind == 'my conv') and index in [1, 2.5]",
     'skip where not (index == 1 or kind == "my conv") and index in [1, 2.5]'),
    ("skip where index == 1 or (index == 2 or index == 3)",
     "skip where index == 1 or (index == 2 or index == 3)"),
    ("skip where (index == 1 and index == 2) and not not index == 3",
     "skip where index == 1 and index == 2 and not not index == 3"),
    ("skip ** in layer1", "skip ** in layer1"),
    ("skip sensitive above 0.015", "skip sensitive above 1.5%"),
    ("target params 0.4", "target params 40%"),
    ("data npz 'a \"b\"' val 10% test 0 seed 0", 'data npz "a \\"b\\"" val 0.1 test 0 seed 0'),
    ("iterate until target remove 1 per step finetune 0 steps",
     "iterate until target remove 1 per step finetune 0 steps"),
    ("finetune epochs 2 select best lr 1e-3 weight_decay 0",
     "finetune epochs 2 lr 0.001 weight_decay 0 select best"),
    ("task python 'pkg.mod:fn'", 'task python "pkg.mod:fn"'),
    ("trace export", "trace export"),
    ("allow inexact   layernorm", "allow inexact layernorm"),
    ("input 3x32x32", "input 3x32x32"),
    ("model pkg.mod:factory", "model pkg.mod:factory"),
])
def test_describe_as_written(source, text):
    stmt = parse_text(source).statements[0]
    assert round_trip(stmt) == text


def test_pieces():
    stmt = parse_text("prune a by taylor(batches=16) remove 10% round 8").statements[0]
    assert describe(stmt.amount) == "remove 10%"
    assert describe(stmt.criterion) == "taylor(batches=16)"
    assert describe(stmt.selectors[0]) == "a"
    assert describe(ast.Amount("count", 48)) == "keep 48 channels"
    assert describe(ast.Amount("fraction", 0.5, "heads")) == "keep 0.5 heads"
    assert describe(ast.Compare("kind", "==", "conv")) == "kind == conv"


def test_yaml_keeps_the_spelling():
    recipe = parse_yaml("prune: [{select: a, by: l1, remove: 10%}, {select: b, by: l1, "
                        "channels: 8}, {select: c, by: l1, keep: 0.5 heads}]")
    assert [describe(s.amount) for s in recipe.statements] == \
        ["remove 10%", "keep 8 channels", "keep 0.5 heads"]


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_fixtures_round_trip(path):
    recipe = load(path)
    for stmt in recipe.statements:
        round_trip(stmt)
    assert parse_text(describe(recipe)) == recipe


def test_describe_refuses_other_things():
    with pytest.raises(TypeError, match="not str"):
        describe("prune a by l1 keep 0.5")


# ---- generated statements ---------------------------------------------------------------------

GLOBS = ["conv1", "conv*", "layer1.**.conv1", "/conv1", "conv{8..13}", "layer{1,2}.*.conv1",
         "**", "by", "keep", "input", "a.b_c.0", "{x, y}"]
WORDS = ["conv", "linear", "convT", "my kind", "true", "x-y", "and", ""]
NUMERIC = [a for a in ast.ATTRIBUTES if a != "kind"]

# the language reads numbers between 1e-60 and 1e31 (and 0): no subnormals
fractions = st.floats(min_value=1e-6, max_value=1.0)
shares = st.floats(min_value=1e-9, max_value=1.0) | st.just(0.0)
open_fractions = st.floats(min_value=1e-6, max_value=0.999999)
numbers = st.one_of(st.integers(-10**9, 10**9),
                    st.floats(min_value=-1e12, max_value=1e12).filter(
                        lambda v: v == 0 or abs(v) > 1e-30))
strings = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
                  max_size=12)
selectors = st.lists(st.sampled_from(GLOBS), min_size=1, max_size=3).map(
    lambda ps: tuple(ast.Selector(p) for p in ps))
scopes = st.none() | st.sampled_from(GLOBS).map(ast.Selector)
atoms = st.one_of(
    st.builds(ast.Compare, st.sampled_from(NUMERIC), st.sampled_from(["==", "!=", "<", "<=",
                                                                      ">", ">="]), numbers),
    st.builds(ast.Compare, st.just("kind"), st.sampled_from(["==", "!="]),
              st.sampled_from(WORDS)),
    st.builds(ast.InList, st.sampled_from(NUMERIC), st.lists(numbers, max_size=3).map(tuple),
              st.booleans()),
    st.builds(ast.InList, st.just("kind"), st.lists(st.sampled_from(WORDS), max_size=3)
              .map(tuple), st.booleans()))
predicates = st.recursive(atoms, lambda inner: st.one_of(
    st.builds(ast.And, inner, inner), st.builds(ast.Or, inner, inner),
    st.builds(ast.Not, inner)), max_leaves=6)


def _argument_values(check):
    """Values the registry's check accepts, as the parser returns them."""
    if isinstance(check, Whole):
        return st.integers(check.minimum, 10**6)
    if isinstance(check, Share):
        return open_fractions if check.high_open else fractions
    if isinstance(check, Real):
        return st.floats(min_value=1e-6, max_value=1e6) | st.just(0.0)
    if isinstance(check, Flag):
        return st.booleans()
    assert isinstance(check, Word), check
    return st.sampled_from(check.options)


@st.composite
def criteria(draw):
    declared = CRITERIA[draw(st.sampled_from(CRITERIA.names))]
    chosen = draw(st.lists(st.sampled_from(declared.arguments), unique_by=lambda a: a.name)
                  ) if declared.arguments else []
    args = tuple(sorted((a.name, draw(_argument_values(a.check))) for a in chosen))
    return ast.Criterion(declared.name, args)


@st.composite
def amounts(draw):
    unit = draw(st.sampled_from(UNITS))
    if draw(st.booleans()):
        return ast.Amount("count", draw(st.integers(1, 10**6)), unit)
    return ast.Amount("fraction", draw(fractions), unit, verb=draw(st.sampled_from(
        ["keep", "remove"])), percent=draw(st.booleans()))


@st.composite
def data_statements(draw):
    source = draw(st.sampled_from(SOURCES.names))
    declared = SOURCES[source]
    path = None if declared.path == "none" else draw(st.none() | strings)
    val, test = draw(st.none() | open_fractions), draw(st.none() | open_fractions)
    if val is not None and test is not None and val + test >= 0.999:
        test = None
    image = declared.takes("resize")
    return ast.Data(source, path, draw(st.none() | st.integers(1, 4096)), val, test,
                    draw(st.none() | st.integers(0, 10**6)),
                    draw(st.integers(1, 4096)) if image and draw(st.booleans()) else None,
                    draw(st.sampled_from(NORMALIZATIONS)) if image and draw(st.booleans())
                    else None)


maybe_int = st.none() | st.integers(0, 1000)
statements = st.one_of(
    st.builds(ast.ModelStmt, st.from_regex(r"[a-z_][a-z0-9_.]{0,8}(:[a-z_][a-z0-9_]{0,8})?",
                                           fullmatch=True).filter(lambda s: ".." not in s)),
    st.builds(ast.InputStmt, st.lists(st.integers(1, 10**6), min_size=1, max_size=4)
              .map(tuple)),
    st.builds(ast.StrategyStmt, st.sampled_from(STRATEGIES)),
    st.builds(ast.Prune, selectors, criteria(), amounts(), scopes, st.none() | predicates,
              st.none() | st.integers(1, 64)),
    st.builds(ast.Skip, selectors, scopes, st.none() | predicates),
    st.builds(ast.Skip, st.just(()), sensitive=st.just(True),
              threshold=st.none() | shares),
    st.builds(ast.Target, st.sampled_from(TARGET_METRICS), fractions),
    data_statements(),
    st.builds(ast.Iterate, st.integers(1, 1000), maybe_int),
    st.builds(ast.Iterate, st.none(), maybe_int, st.just(True), st.integers(1, 1000)),
    st.builds(ast.Finetune, st.integers(1, 1000), st.none() | st.floats(1e-9, 10.0),
              st.none() | st.floats(1e-9, 0.999999) | st.just(0.0), st.none() | shares,
              st.none() | st.sampled_from(OPTIMIZERS),
              st.none() | st.sampled_from(FINETUNE_SELECT)),
    st.builds(ast.Emit, st.sampled_from(EMIT_FORMATS), st.none() | strings),
    st.builds(ast.Task, st.sampled_from([t for t in TASKS if t != "python"])),
    st.builds(ast.Task, st.just("python"),
              st.from_regex(r"[a-z_][a-z0-9_.]{0,8}:[a-z_][a-z0-9_]{0,8}", fullmatch=True)),
    st.builds(ast.TraceStmt, st.sampled_from(TRACE_MODES)),
    st.builds(ast.Allow, st.sampled_from(ALLOWANCES)),
)


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(statements)
def test_generated_statements_round_trip(stmt):
    text = round_trip(stmt)
    assert describe(parse_text(text).statements[0]) == text
