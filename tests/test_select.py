"""Selector globs, scopes, predicate evaluation and "did you mean" suggestions."""
from __future__ import annotations

import doctest
import importlib
import itertools
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pruneql.errors import RecipeError, Span
from pruneql.lang.ast import And, Compare, InList, Not, Or, Selector
from pruneql.lang.select import Glob, closest, evaluate, in_scope

NAMES = ["conv1", "bn1", "fc", "features.conv9", "layer1.conv1", "layer1.0.conv1",
         "layer1.0.bn1", "layer1.1.conv2", "layer10.0.conv1", "layer2.3.conv1",
         "layer3.0.downsample.0", "layer1.0.a.conv1", "x.layer1.conv1", "conv10", "conv08"]

# pattern → the names of NAMES it matches (every other name must not match)
TABLE = {
    # no dot: the last component at any depth
    "conv1": {"conv1", "layer1.conv1", "layer1.0.conv1", "x.layer1.conv1", "layer1.0.a.conv1",
              "layer10.0.conv1", "layer2.3.conv1"},
    "fc": {"fc"},
    # a leading slash anchors at the root
    "/conv1": {"conv1"},
    "/layer1.conv1": {"layer1.conv1"},
    # a dot anchors at the root
    "layer1.conv1": {"layer1.conv1"},
    "layer3.0.downsample.0": {"layer3.0.downsample.0"},
    # * stays inside one component
    "conv*": {"conv1", "layer1.conv1", "layer1.0.conv1", "x.layer1.conv1", "layer1.0.a.conv1",
              "layer10.0.conv1", "layer2.3.conv1", "features.conv9", "layer1.1.conv2",
              "conv10", "conv08"},
    "layer1.*.conv1": {"layer1.0.conv1"},
    "layer1.*": {"layer1.conv1"},
    "*.*.bn1": {"layer1.0.bn1"},
    # ** spans any number of components, zero included
    "**": set(NAMES),
    "layer1.**.conv1": {"layer1.conv1", "layer1.0.conv1", "layer1.0.a.conv1"},
    "layer1.**": {"layer1.conv1", "layer1.0.conv1", "layer1.0.bn1", "layer1.1.conv2",
                  "layer1.0.a.conv1"},
    "**.bn1": {"bn1", "layer1.0.bn1"},
    "layer1.**.**.conv2": {"layer1.1.conv2"},
    # alternation, nested, with dots (which anchor), with stars
    "layer{1,2}.*.conv1": {"layer1.0.conv1", "layer2.3.conv1"},
    "{fc,bn1}": {"fc", "bn1", "layer1.0.bn1"},
    "{layer1.0,fc}": {"fc"},
    "{conv,bn}1": {"conv1", "bn1", "layer1.conv1", "layer1.0.conv1", "layer1.0.bn1",
                   "x.layer1.conv1", "layer1.0.a.conv1", "layer10.0.conv1", "layer2.3.conv1"},
    "layer{1.{0,1},2.3}.conv*": {"layer1.0.conv1", "layer1.1.conv2", "layer2.3.conv1"},
    "{layer1, layer2}.*.conv1": {"layer1.0.conv1", "layer2.3.conv1"},
    # numeric ranges: inclusive, either order, as integers
    "conv{8..13}": {"features.conv9", "conv10", "conv08"},
    "conv{13..8}": {"features.conv9", "conv10", "conv08"},
    "layer{1..2}.*.conv1": {"layer1.0.conv1", "layer2.3.conv1"},
    "layer{2..10}.0.*": {"layer10.0.conv1"},
}


@pytest.mark.parametrize("pattern", TABLE)
def test_glob_table(pattern):
    glob = Glob(pattern)
    assert {n for n in NAMES if glob.match(n)} == TABLE[pattern]


def test_anchoring():
    assert not Glob("conv1").anchored and not Glob("conv{8..13}").anchored
    assert Glob("/conv1").anchored and Glob("a.b").anchored and Glob("{a.b,c}").anchored


def test_ranges_match_whole_numbers_with_backtracking():
    assert Glob("*{1..3}*").match("x5y2") and not Glob("*{1..3}*").match("x5y7")
    assert Glob("conv{0..0}").match("conv000") and not Glob("conv{1..3}").match("conv")


# A hang guard, not a performance test: an expanding or backtracking matcher takes minutes
# here; a generous bound catches that without flaking on a busy CI.
HANG = 10.0


def test_huge_ranges_are_instant():
    started = time.perf_counter()
    glob = Glob("conv{1..99999999999999}")
    assert glob.match("conv99999999999999") and not glob.match("conv100000000000000")
    assert not glob.match("conv" + "1" * 10_000)          # no int() of 10,000 digits
    assert time.perf_counter() - started < HANG


def test_many_stars_do_not_backtrack_exponentially():
    started = time.perf_counter()
    assert not Glob("*a*a*a*a*a*a*a*a*a*a*b").match("a" * 80)
    assert not Glob("**.**.**.**.x").match(".".join("a" * 80))
    assert time.perf_counter() - started < HANG


@pytest.mark.parametrize("pattern, message", [
    ("", "empty selector"),
    ("/", "empty selector"),
    ("conv{8..13", "unbalanced '{'"),
    ("conv8..13}", "unbalanced '}'"),
    ("a..b", "empty name component"),
    ("a.", "empty name component"),
    ("{a..,b}", "empty name component"),
    ("a{}", "empty braces"),
    ("a b", "invalid character ' '"),
    ("a,b", "invalid character ','"),
    ("conv-1", "invalid character '-'"),
    ("é", "invalid character 'é'"),
    ("a\x00", "invalid character 'U+0000'"),
    ("a/b", "'/' may only start a selector"),
    ("x" + "{" * 20 + "}" * 20, "braces nested too deeply"),
    ("a{1.." + "9" * 40 + "}", "range bound too long"),
])
def test_invalid_globs(pattern, message):
    span = Span(3, 7, 9, "prune x by l1 keep 0.5", "r.prune")
    with pytest.raises(RecipeError, match=re.escape(message)) as caught:
        Glob(pattern, span)
    assert caught.value.span is span


def test_glob_of_selector():
    glob = Glob.of(Selector("conv1"))
    assert glob.pattern == "conv1" and glob.match("a.conv1") and repr(glob) == "Glob('conv1')"


# ---- a reference: brace expansion, then a plain regex per expansion ------------------------

def _expand(pattern: str) -> list[str]:
    found = re.search(r"\{([^{}]*)\}", pattern)
    if not found:
        return [pattern]
    inner = found.group(1)
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", inner)
    if rng:
        lo, hi = sorted(map(int, rng.groups()))
        options = [str(k) for k in range(lo, hi + 1)]
    else:
        options = inner.split(",")
    head, tail = pattern[:found.start()], pattern[found.end():]
    return [e for o in options for e in _expand(head + o + tail)]


def _reference(pattern: str, name: str) -> bool:
    rooted = pattern.startswith("/") or "." in re.sub(r"\{\d+\.\.\d+\}", "", pattern)
    for option in _expand(pattern.lstrip("/")):
        parts = [p for i, p in enumerate(option.split("."))
                 if not (p == "**" and i and option.split(".")[i - 1] == "**")]
        regex = r"\.".join(".*" if p == "**" else re.escape(p).replace(r"\*", "[^.]*")
                           for p in parts)
        regex = regex.replace(r".*\.", r"(?:[^.]+\.)*").replace(r"\..*", r"(?:\.[^.]+)*")
        if re.fullmatch(regex if rooted else r"(?:.*\.)?" + regex, name):
            return True
    return False


ATOMS = ["a", "b", "1", "2", "*", "{1..3}", "{a,b}", "{a.b,c}", "{1,2*}"]


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.lists(st.sampled_from(ATOMS + ["**"]), min_size=1, max_size=2),
                min_size=1, max_size=3), st.booleans(),
       st.sampled_from(["a", "b", "a.b", "a1", "a.1", "b.2.a", "ab", "a.b.c", "c", "12",
                        "a.b.1", "b.a.b", "2.a"]))
def test_glob_agrees_with_brace_expansion(components, rooted, name):
    pattern = ("/" if rooted else "") + ".".join("".join(c) for c in components)
    assert Glob(pattern).match(name) == _reference(pattern, name), pattern


# ---- scope ----------------------------------------------------------------------------------

@pytest.mark.parametrize("scope, name, inside", [
    ("layer1", "layer1.0.conv1", True),
    ("layer1", "layer1", True),
    ("layer1", "layer10.0.conv1", False),
    ("layer1", "layer2.0.conv1", False),
    ("layer1", "encoder.layer1.conv1", True),
    ("/layer1", "encoder.layer1.conv1", False),
    ("layer{1..3}", "layer3.5.conv2", True),
    ("layer1.0", "layer1.0.conv1", True),
    ("layer1.0", "layer1.1.conv1", False),
])
def test_in_scope(scope, name, inside):
    assert in_scope(Glob(scope), name) is inside


# ---- predicates -------------------------------------------------------------------------------

CONV = {"kind": "conv", "in_channels": 64, "out_channels": 128, "kernel": (3, 3),
        "stride": 1, "groups": 1, "flops": 1.5e6, "params": 73728, "index": 7}


@pytest.mark.parametrize("pred, expected", [
    (Compare("out_channels", "==", 128), True),
    (Compare("out_channels", "!=", 128), False),
    (Compare("out_channels", "<", 128), False),
    (Compare("out_channels", "<=", 128), True),
    (Compare("out_channels", ">", 64), True),
    (Compare("out_channels", ">=", 129), False),
    (Compare("flops", ">", 1e6), True),
    (Compare("kind", "==", "conv"), True),
    (Compare("kind", "!=", "linear"), True),
    (Compare("kernel", "==", 3), True),              # (3, 3) reads as 3
    (InList("index", (7, 8)), True),
    (InList("index", (7, 8), negate=True), False),
    (InList("index", ()), False),
    (InList("kind", ("conv", "linear")), True),
    (And(Compare("index", ">", 1), Compare("stride", "==", 1)), True),
    (And(Compare("index", ">", 1), Compare("stride", "==", 2)), False),
    (Or(Compare("index", ">", 100), Compare("stride", "==", 1)), True),
    (Not(Compare("index", ">", 100)), True),
    # a missing or None attribute makes every comparison false
    (Compare("missing", "==", 1), False),
    (Compare("missing", "!=", 1), False),
    (InList("missing", (1,), negate=True), False),
    (Not(Compare("missing", "==", 1)), True),
    # values of different types are never equal and never ordered
    (Compare("kind", "==", 3), False),
    (Compare("kind", "!=", 3), True),
    (Compare("kind", "<", 3), False),
    (Compare("index", "==", "7"), False),
    (InList("index", ("7",)), False),
])
def test_evaluate(pred, expected):
    assert evaluate(pred, CONV) is expected


def test_evaluate_none_attribute():
    assert not evaluate(InList("index", (16, 20), negate=True), {"index": None})
    assert not evaluate(Compare("index", ">", 0), {"index": None})


def test_evaluate_mixed_tuple_is_not_a_scalar():
    assert not evaluate(Compare("kernel", "==", 3), {"kernel": (1, 3)})
    assert not evaluate(Compare("kernel", ">", 1), {"kernel": (1, 3)})


# ---- closest ---------------------------------------------------------------------------------

def test_closest():
    assert closest("kep", ["keep", "remove"]) == ["keep"]
    assert closest("layer1.0.conv", ["layer1.0.conv1", "layer1.0.conv2", "fc"], n=2) == \
        ["layer1.0.conv2", "layer1.0.conv1"]
    assert closest("zzz", ["keep"]) == []
    assert closest("x" * 100_000, ["x"]) == []            # long words stay fast
    assert closest("l3", ["taylor", "l2", "l1"], cutoff=0.5) == ["l2", "l1"]


def test_docstring_examples():
    for name in ("pruneql.lang.select", "pruneql.lang.parse", "pruneql.lang.yaml_loader",
                 "pruneql.lang", "pruneql.lang.builder", "pruneql.lang.values",
                 "pruneql.lang.describe", "pruneql.lang.criteria", "pruneql.lang.registry",
                 "pruneql.lang.syntax", "pruneql.lang.transform", "pruneql.lang.source"):
        assert doctest.testmod(importlib.import_module(name)).failed == 0, name


def test_all_names_compile_quickly():
    patterns = ["".join(p) for p in itertools.product(["a", "*", "{1..3}", "."], repeat=4)]
    started = time.perf_counter()
    for pattern in patterns:
        try:
            Glob(pattern).match("a.a1.a2")
        except RecipeError:
            pass
    assert time.perf_counter() - started < HANG
