"""The newer forms of the language -- units, Molchanov's loop, run settings, criterion
arguments -- in both syntaxes, with their error messages; and the grammar/vocabulary
agreement the builder relies on."""
from __future__ import annotations

import pytest

from pruneql.lang import parse_text, parse_yaml
from pruneql.lang.ast import (Allow, Amount, Criterion, Data, Finetune, Iterate, Prune,
                              Selector, Task, TraceStmt)
from pruneql.lang.grammar import parser
from pruneql.lang.vocabulary import (ALLOWANCES, FINETUNE_SELECT, NORMALIZATIONS, SINGLETONS,
                                     STATEMENTS, TASKS, TRACE_MODES, UNITS, USAGE)
from tests.test_lang import error_of, only


def prune(amount=Amount("fraction", 0.5), criterion=Criterion("l1")) -> Prune:
    return Prune((Selector("a"),), criterion, amount)


FORMS = [
    ("prune a by l1 keep 0.5 heads", prune(Amount("fraction", 0.5, "heads"))),
    ("prune a by l1 keep 6 heads", prune(Amount("count", 6, "heads"))),
    ("prune a by l1 remove 25% head_dims", prune(Amount("fraction", 0.75, "head_dims"))),
    ("prune a by l1 keep 48 channels", prune(Amount("count", 48, "channels"))),
    ("prune a by l1 keep 0.5 channels", prune(Amount("fraction", 0.5, "channels"))),
    ("prune a by l1 keep 1 heads", prune(Amount("count", 1, "heads"))),
    ("prune a by l1 keep 1.0 heads", prune(Amount("fraction", 1.0, "heads"))),
    ("prune a by l1 keep 100% heads", prune(Amount("fraction", 1.0, "heads"))),
    ("prune a by ensemble(ridge=0.5) keep 0.5",
     prune(criterion=Criterion("ensemble", (("ridge", 0.5),)))),
    ("prune a by ensemble(ridge=0) keep 0.5",
     prune(criterion=Criterion("ensemble", (("ridge", 0.0),)))),
    ("prune a by oracle(signed=true) keep 0.5",
     prune(criterion=Criterion("oracle", (("signed", True),)))),
    ("prune a by oracle(signed=false, batches=2) keep 0.5",
     prune(criterion=Criterion("oracle", (("batches", 2), ("signed", False))))),
    ("iterate until target remove 1 per step", Iterate(None, None, True, 1)),
    ("iterate until target remove 4 per step finetune 10 steps", Iterate(None, 10, True, 4)),
    ("iterate 3 steps finetune 0 steps", Iterate(3, 0)),
    ("finetune epochs 2 select best", Finetune(2, select="best")),
    ("finetune epochs 2 select last optimizer sgd", Finetune(2, optimizer="sgd", select="last")),
    ('data npz "d.npz" test 0.1 seed 0', Data("npz", "d.npz", test=0.1, seed=0)),
    ("data digits val 0.5 test 0.4", Data("digits", val=0.5, test=0.4)),
    ('data imagefolder "img" resize 224 normalize imagenet',
     Data("imagefolder", "img", resize=224, normalize="imagenet")),
    ('data imagefolder "img" normalize none', Data("imagefolder", "img", normalize="none")),
    ("data tokens", Data("tokens")),
    ('data tokens "corpus.txt" batch 8', Data("tokens", "corpus.txt", batch=8)),
    ("task classification", Task("classification")),
    ("task segmentation", Task("segmentation")),
    ("task lm", Task("lm")),
    ('task python "pkg.mod:loss"', Task("python", "pkg.mod:loss")),
    ("trace auto", TraceStmt("auto")),
    ("trace symbolic", TraceStmt("symbolic")),
    ("trace export", TraceStmt("export")),
    ("allow inexact layernorm", Allow("inexact layernorm")),
    ("allow  inexact\tlayernorm", Allow("inexact layernorm")),
]


@pytest.mark.parametrize("source, expected", FORMS, ids=[s for s, _ in FORMS])
def test_forms(source, expected):
    assert only(source) == expected


def test_amount_spelling_is_kept_but_not_compared():
    removed, kept = only("prune a by l1 remove 10%").amount, only("prune a by l1 keep 0.9").amount
    assert removed == kept
    assert (removed.verb, removed.percent, kept.verb, kept.percent) == \
        ("remove", True, "keep", False)


def test_kept_counts_heads_as_given():
    assert Amount("count", 6, "heads").kept(12) == 6
    assert Amount("fraction", 0.5, "heads").kept(12) == 6


# ---- text / YAML twins of every new form ---------------------------------------------------

TWINS = [
    ("prune: [{select: a, by: l1, keep: 0.5 heads}]", "prune a by l1 keep 0.5 heads"),
    ("prune: [{select: a, by: l1, keep: '6 heads'}]", "prune a by l1 keep 6 heads"),
    ("prune: [{select: a, by: l1, remove: 25% head_dims}]",
     "prune a by l1 remove 25% head_dims"),
    ("prune: [{select: a, by: l1, channels: 48}]", "prune a by l1 keep 48 channels"),
    ("prune: [{select: a, by: l1, keep: 0.5 channels}]", "prune a by l1 keep 0.5"),
    ("prune: [{select: a, by: {ensemble: {ridge: 0.1}}, keep: 1}]",
     "prune a by ensemble(ridge=0.1) keep 1"),
    ("prune: [{select: a, by: {oracle: {signed: true}}, keep: 1}]",
     "prune a by oracle(signed=true) keep 1"),
    ("prune: [{select: a, by: {oracle: {signed: yes}}, keep: 1}]",
     "prune a by oracle(signed=true) keep 1"),
    ("prune: [{select: a, by: 'oracle(signed=false)', keep: 1}]",
     "prune a by oracle(signed=false) keep 1"),
    ("iterate: {until: target, remove: 1, finetune: 10}",
     "iterate until target remove 1 per step finetune 10 steps"),
    ("iterate: {until: target, remove: 2}", "iterate until target remove 2 per step"),
    ("iterate: {steps: 4, finetune: 0}", "iterate 4 steps finetune 0 steps"),
    ("finetune: {epochs: 3, select: best}", "finetune epochs 3 select best"),
    ("data: {source: digits, test: 0.1, seed: 2}", "data digits test 0.1 seed 2"),
    ("data: {source: imagefolder, path: img, resize: 32, normalize: none}",
     'data imagefolder "img" resize 32 normalize none'),
    ("data: tokens", "data tokens"),
    ("data: {source: tokens, path: corpus.txt}", "data tokens 'corpus.txt'"),
    ("task: lm", "task lm"),
    ("task: {kind: python, function: 'pkg.mod:fn'}", 'task python "pkg.mod:fn"'),
    ("trace: symbolic", "trace symbolic"),
    ("allow: inexact layernorm", "allow inexact layernorm"),
    ("allow: [inexact layernorm, inexact layernorm]",
     "allow inexact layernorm; allow inexact layernorm"),
]


@pytest.mark.parametrize("yaml_source, text_source", TWINS)
def test_yaml_and_text_twins_are_equal(yaml_source, text_source):
    assert parse_yaml(yaml_source) == parse_text(text_source)


def test_yaml_order_of_the_new_statements():
    recipe = parse_yaml("allow: inexact layernorm\ntrace: auto\ntask: lm\nmodel: m\ninput: 3")
    assert [type(s).__name__ for s in recipe.statements] == \
        ["ModelStmt", "InputStmt", "Task", "TraceStmt", "Allow"]


# ---- messages ----------------------------------------------------------------------------------

@pytest.mark.parametrize("source, message", [
    ("prune a by l1 keep 0.5 head", "unexpected 'head'; expected 'channels', 'head_dims', "
                                    "'heads', 'round' or the end of the statement"),
    ("prune a by l1 keep 0 heads", "a head count must be a positive integer, got 0"),
    ("prune a by l1 keep 2.5 heads", "keep must be in (0, 1], got 2.5"),
    ("prune a by l1 remove 2 heads", "remove takes a fraction, not a number of heads"),
    ("prune a by ensemble(ridge=-1) keep 0.5",
     "ensemble(ridge=...) must be a non-negative number, got -1"),
    ("prune a by ensemble(ridge=x) keep 0.5",
     "ensemble(ridge=...) must be a non-negative number, got 'x'"),
    ("prune a by oracle(signed=maybe) keep 0.5",
     "oracle(signed=...) must be true or false, got 'maybe'"),
    ('prune a by oracle(signed="true") keep 0.5',
     "oracle(signed=...) must be true or false, got 'true'"),
    ("prune a by oracle(signed=1) keep 0.5", "oracle(signed=...) must be true or false, got 1"),
    ("iterate until remove 1 per step", "unexpected 'remove'; expected 'target'"),
    ("iterate until target remove 0 per step", "remove per step must be a positive integer"),
    ("iterate until target remove 0.5 per step", "remove per step must be a positive integer"),
    ("iterate until target remove 1 per steps", "unexpected 'steps'; expected 'step'"),
    ("finetune epochs 1 select worst", "unexpected 'worst'; expected 'best' or 'last'"),
    ('data npz "x" resize 32', "resize only applies to imagefolder data, not npz"),
    ("data digits normalize imagenet", "normalize only applies to imagefolder data, not digits"),
    ("data digits test 0.9 val 0.2", "val + test must be below 1, got 0.2 + 0.9"),
    ("data digits val 50% test 0.5", "val + test must be below 1, got 50% + 0.5"),
    ("data digits test 1", "test must be in [0, 1), got 1"),
    ("data digits seed -1", "seed must be a non-negative integer, got -1"),
    ('data imagefolder "x" resize 0', "resize must be a positive integer, got 0"),
    ('data digits "x.npz"', "the digits source is bundled and takes no path"),
    ("task python", "task python needs a function"),
    ('task lm "pkg:fn"', "task lm takes no function"),
    ('task python "not a function"', "a task function looks like pkg.module:function"),
    ("trace eager", "unexpected 'eager'; expected 'auto', 'export' or 'symbolic'"),
    ("allow exact layernorm", "unknown allowance 'exact layernorm'"),
    ("allow", "unexpected end of input; expected a name"),
])
def test_error_messages(source, message):
    err = error_of(source)
    assert err.message == message or err.message.startswith(message), err.message
    assert err.span is not None and err.hint


@pytest.mark.parametrize("source, message", [
    ("prune: [{select: a, by: l1, keep: 0.5 head}]", "unexpected 'head'"),
    ("prune: [{select: a, by: l1, channels: 0}]", "a channel count must be a positive integer"),
    ("prune: [{select: a, by: {oracle: {signed: maybe}}, keep: 1}]",
     "oracle(signed=...) must be true or false, got 'maybe'"),
    ("prune: [{select: a, by: {oracle: {signed: 'true'}}, keep: 1}]",
     "oracle(signed=...) must be true or false, got 'true'"),
    ("iterate: {until: flops, remove: 1}", "unknown iterate until 'flops'"),
    ("iterate: {until: target}", "iterate until needs remove"),
    ("iterate: {until: target, remove: 1, steps: 3}", "iterate takes steps or until, not both"),
    ("iterate: {steps: 3, remove: 1}", "remove (per step) goes with until: target"),
    ("iterate: {finetune: 3}", "iterate needs steps"),
    ("finetune: {epochs: 1, select: worst}", "unknown finetune select 'worst'"),
    ("finetune: {epochs: 1, selct: best}", "unknown key 'selct' in finetune"),
    ("data: {source: npz, path: x, resize: 32}", "resize only applies to imagefolder data"),
    ("data: {source: digits, test: 0.9, val: 0.2}", "val + test must be below 1, got 0.2 + 0.9"),
    ("data: {source: imagefolder, path: x, normalize: imagnet}",
     "unknown normalization 'imagnet'"),
    ("data: {path: x}", "data needs a source"),
    ("task: python", "task python needs a function"),
    ("task: {function: 'a:b'}", "task needs a kind"),
    ("task: {kind: lm, function: 'a:b'}", "task lm takes no function"),
    ("task: regression", "unknown task 'regression'"),
    ("trace: eager", "unknown trace mode 'eager'"),
    ("trace: [auto]", "trace must be a single value, got a list"),
    ("allow: exact layernorm", "unknown allowance 'exact layernorm'"),
    ("allow: [inexact layernorm, {a: b}]", "an allowance must be a single value"),
])
def test_yaml_error_messages(source, message):
    err = error_of(source, "r.yaml")
    assert err.message.startswith(message), err.message
    assert err.span is not None


def test_an_option_given_twice():
    err = error_of("data digits seed 1 seed 2")
    assert err.message == "seed given twice" and (err.span.column, err.span.end_column) == (20, 26)


def test_unknown_allowance_suggests_the_closest():
    err = error_of("allow inexact layernrom")
    assert err.hint.startswith("did you mean 'inexact layernorm'?")
    assert (err.span.column, err.span.end_column) == (7, 24)


def test_value_errors_point_at_the_value():
    err = error_of("prune a by oracle(batches=2, signed=maybe) keep 0.5")
    assert (err.span.column, err.span.end_column) == (37, 42)
    err = error_of("input 3x0x32")
    assert (err.span.column, err.span.end_column) == (9, 10)


# ---- the vocabulary agrees with the grammar --------------------------------------------------

def test_choices_are_grammar_keywords():
    keywords = {t.pattern.value for t in parser().terminals if t.pattern.type == "str"}
    for word in STATEMENTS + UNITS + FINETUNE_SELECT + NORMALIZATIONS + TASKS + TRACE_MODES:
        assert word in keywords, word
    assert not any(word in keywords for a in ALLOWANCES for word in a.split())


def test_every_statement_has_usage_and_singletons_are_statements():
    assert set(USAGE) == set(STATEMENTS) and set(SINGLETONS) <= set(STATEMENTS)
    for word in ("task", "trace", "allow"):
        assert f"did you mean '{word}'?" in error_of(word[:-1] + "x foo").hint
