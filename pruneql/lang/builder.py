"""One builder for both syntaxes: values as written in, checked AST nodes out.

The lark transformer (text) and the YAML loader only map their syntax onto these calls,
handing over ``Raw`` values and ``Option(keyword, raw, span)`` triples; every bound of every
statement, option and argument is checked here, once, so both syntaxes accept and reject
exactly the same things with the same messages.

>>> finetune(Raw("2"), [Option("lr", Raw("0.01")), Option("select", Raw("best"))])
Finetune(epochs=2, lr=0.01, momentum=None, weight_decay=None, optimizer=None, select='best')
>>> amount("remove", Raw("25%"), Raw("heads"))
Amount(kind='fraction', value=0.75, unit='heads')
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from pruneql.errors import RecipeError, Span
from pruneql.lang import ast
from pruneql.lang.criteria import CriterionSpec, spec
from pruneql.lang.data_sources import SOURCES
from pruneql.lang.select import Glob
from pruneql.lang.source import MAX_PREDICATE_DEPTH, quote
from pruneql.lang.suggest import did_you_mean
from pruneql.lang.values import (INTEGER, Check, Named, Option, Raw, Real, Share, Whole,
                                 choice, is_number, to_number)
from pruneql.lang.vocabulary import (ALLOWANCES, CRITERIA, DATA_SOURCES, EMIT_FORMATS,
                                     FINETUNE_SELECT, NORMALIZATIONS, OPTIMIZERS, STRATEGIES,
                                     TARGET_METRICS, TASKS, TRACE_MODES, UNITS)


@dataclass(frozen=True)
class Opt:
    """An option: its check, a one-line doc (the hint of its errors), and its name in
    messages when that is not the keyword."""

    check: Check
    doc: str
    what: str | None = None


# ---- the bounds, once ------------------------------------------------------------------------

KEEP = Share(low_open=True, high_open=False)          # keep 0.5: (0, 1]
REMOVE = Share(low_open=False, high_open=True)        # remove 0.5: [0, 1)
HELD_OUT = Share(low_open=False, high_open=True)      # val, test: [0, 1)
TARGET = Share()
THRESHOLD = Share(low_open=False)                     # skip sensitive above 1%: [0, 1]
POSITIVE = Whole()
DATA_OPTIONS = {
    "batch": Opt(POSITIVE, "examples per batch"),
    "val": Opt(HELD_OUT, "the share of the data held out for validation"),
    "test": Opt(HELD_OUT, "the share of the data held out for testing"),
    "seed": Opt(Whole(minimum=0), "the seed of the train/val/test split"),
    "resize": Opt(POSITIVE, "the side, in pixels, images are resized to"),
    "normalize": Opt(Named(NORMALIZATIONS), "imagenet: ImageNet's mean and std; none: as read",
                     "normalization"),
}
FINETUNE_OPTIONS = {
    "lr": Opt(Real(strict=True, words="positive"), "the learning rate, e.g. lr 0.01"),
    "momentum": Opt(Share(low_open=False, high_open=True), "SGD momentum, e.g. momentum 0.9"),
    "weight_decay": Opt(Real(strict=False, words="non-negative"),
                        "L2 weight decay, e.g. weight_decay 5e-4"),
    "optimizer": Opt(Named(OPTIMIZERS), "the optimizer"),
    "select": Opt(Named(FINETUNE_SELECT), "which weights to keep: the last epoch's, or the "
                                          "best on validation", "finetune select"),
}
_COUNT_OF = {"channels": "a channel count", "heads": "a head count",
             "head_dims": "a head_dims count"}
_FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*")


def checked(options: Iterable[Option], table: dict, statement: str) -> dict:
    """``{keyword: checked value}``; unknown or repeated options are errors.

    >>> checked([Option("batch", Raw("64"))], DATA_OPTIONS, "data")
    {'batch': 64}
    """
    found = {}
    for option in options:
        if option.keyword not in table:
            raise RecipeError(f"{statement} takes no option '{quote(option.keyword)}'",
                              option.span, did_you_mean(option.keyword, table) +
                              f"{statement} takes {', '.join(table)}")
        if option.keyword in found:
            raise RecipeError(f"{option.keyword} given twice", option.span)
        opt = table[option.keyword]
        found[option.keyword] = hinted(opt.check, option.value, opt.what or option.keyword,
                                       f"{option.keyword}: {opt.doc}")
    return found


def hinted(check: Check, raw: Raw, what: str, hint: str):
    """``check(raw, what)``, with ``hint`` on an error that has none of its own.

    >>> try:
    ...     hinted(POSITIVE, Raw("0"), "batch", "batch: examples per batch")
    ... except RecipeError as err:
    ...     print(err.hint)
    batch: examples per batch
    """
    try:
        return check(raw, what)
    except RecipeError as err:
        if err.hint is not None:
            raise
        raise RecipeError(err.message, err.span, hint) from None


# ---- statements ------------------------------------------------------------------------------

def model(name: Raw, span: Span | None = None) -> ast.ModelStmt:
    """``model NAME`` (the grammar has checked the name's form).

    >>> model(Raw("vgg16_cifar"))
    ModelStmt(name='vgg16_cifar')
    """
    return ast.ModelStmt(name.text, span)


def input_shape(dims: list[Raw], span: Span | None = None) -> ast.InputStmt:
    """``input 3x32x32``, one Raw per dimension.

    >>> input_shape([Raw("3"), Raw("32")])
    InputStmt(shape=(3, 32))
    """
    if not dims:
        raise RecipeError("input needs at least one dimension", span, "e.g. input 3x32x32")
    return ast.InputStmt(tuple(POSITIVE(d, "every input dimension") for d in dims), span)


def strategy(name: Raw, span: Span | None = None) -> ast.StrategyStmt:
    """``strategy independent|greedy``.

    >>> strategy(Raw("greedy"))
    StrategyStmt(name='greedy')
    """
    return ast.StrategyStmt(choice(name.text, STRATEGIES, "strategy", name.span), span)


def prune(selectors: tuple, crit: ast.Criterion, amt: ast.Amount, scope=None, where=None,
          round_to: Raw | None = None, span: Span | None = None) -> ast.Prune:
    """``prune SELECTORS [in SCOPE] [where PRED] by CRITERION AMOUNT [round N]``.

    >>> prune((selector(Raw("conv1")),), criterion(Raw("l1")), amount("keep", Raw("48"),
    ...       Raw("channels")), round_to=Raw("8")).round
    8
    """
    rounded = None if round_to is None else POSITIVE(round_to, "round")
    return ast.Prune(selectors, crit, amt, scope, where, rounded, span)


def skip(selectors: tuple | None, scope=None, where=None,
         span: Span | None = None) -> ast.Skip:
    """``skip SELECTORS [in SCOPE] [where PRED]``; no selectors (``skip where PRED``, or a
    YAML entry without ``select``) means every layer, ``**``.

    >>> skip((selector(Raw("fc")),), scope=selector(Raw("head"))).scope
    Selector(pattern='head')
    >>> skip(None, where=compare(Raw("index"), "==", Raw("1"))).selectors
    (Selector(pattern='**'),)
    """
    if selectors is None:
        selectors = (ast.Selector("**", span),)
    return ast.Skip(selectors, scope, where, span=span)


def skip_sensitive(threshold: Raw | None, span: Span | None = None) -> ast.Skip:
    """``skip sensitive [above X]``; X is a fraction (1% → 0.01).

    >>> skip_sensitive(Raw("1%")).threshold
    0.01
    """
    value = None if threshold is None else THRESHOLD(threshold, "sensitive threshold")
    return ast.Skip(sensitive=True, threshold=value, span=span)


def target(metric: Raw, value: Raw, span: Span | None = None) -> ast.Target:
    """``target flops|params|latency X``.

    >>> target(Raw("flops"), Raw("50%"))
    Target(metric='flops', value=0.5)
    """
    name = choice(metric.text, TARGET_METRICS, "target metric", metric.span)
    return ast.Target(name, TARGET(value, f"target {name}"), span)


def data(source: Raw, path: Raw | None, options: list[Option],
         span: Span | None = None) -> ast.Data:
    """``data SOURCE ["path"] [OPTION VALUE]...``, checked against the source's declaration.

    >>> stmt = data(Raw("tokens"), None, [Option("test", Raw("0.1"))])
    >>> stmt.source, stmt.path, stmt.test
    ('tokens', None, 0.1)
    """
    name = choice(source.text, DATA_SOURCES, "data source", source.span)
    declared = SOURCES[name]
    if path is not None and declared.path == "none":
        raise RecipeError(f"the {name} source is bundled and takes no path", path.span,
                          f"write {declared.example}")
    given = checked(options, DATA_OPTIONS, "data")
    for option in options:
        _check_source_takes(name, option)
    _check_held_out(given, options)
    return ast.Data(name, None if path is None else path.text, span=span, **given)


def _check_source_takes(source: str, option: Option) -> None:
    if SOURCES[source].takes(option.keyword):
        return
    takers = [n for n in SOURCES.names if SOURCES[n].takes(option.keyword)]
    raise RecipeError(f"{option.keyword} only applies to {' and '.join(takers)} data, "
                      f"not {source}", option.span,
                      f"{source} takes {', '.join(SOURCES[source].options)}")


def _check_held_out(given: dict, options: list[Option]) -> None:
    """val + test < 1: something must be left to train on."""
    if given.get("val") is None or given.get("test") is None:
        return
    if Decimal(repr(given["val"])) + Decimal(repr(given["test"])) < 1:
        return
    texts = {o.keyword: o for o in options}
    later = max((texts["val"], texts["test"]), key=options.index)
    raise RecipeError(f"val + test must be below 1, got {texts['val'].value.text} + "
                      f"{texts['test'].value.text}", later.span,
                      "they are the shares held out for validation and for testing, and the "
                      "rest trains: e.g. val 0.1 test 0.1")


def iterate_steps(steps: Raw, finetune_steps: Raw | None = None,
                  span: Span | None = None) -> ast.Iterate:
    """``iterate N steps [finetune K steps]``.

    >>> iterate_steps(Raw("4"), Raw("10"))
    Iterate(steps=4, finetune_steps=10, until_target=False, per_step=None)
    """
    return ast.Iterate(POSITIVE(steps, "iterate steps"), _finetune_steps(finetune_steps),
                       span=span)


def iterate_until(until: Raw, per_step: Raw, finetune_steps: Raw | None = None,
                  span: Span | None = None) -> ast.Iterate:
    """``iterate until target remove R per step [finetune K steps]``.

    >>> iterate_until(Raw("target"), Raw("1"))
    Iterate(steps=None, finetune_steps=None, until_target=True, per_step=1)
    """
    choice(until.text, ("target",), "iterate until", until.span)
    removed = hinted(POSITIVE, per_step, "remove per step",
                     "how many channels each step removes, e.g. remove 1 per step")
    return ast.Iterate(None, _finetune_steps(finetune_steps), True, removed, span)


def _finetune_steps(raw: Raw | None) -> int | None:
    return None if raw is None else Whole(minimum=0)(raw, "finetune steps")


def finetune(epochs: Raw, options: list[Option], span: Span | None = None) -> ast.Finetune:
    """``finetune epochs N [OPTION VALUE]...``.

    >>> finetune(Raw("1"), [Option("momentum", Raw("0.9"))]).momentum
    0.9
    """
    return ast.Finetune(POSITIVE(epochs, "epochs"), span=span,
                        **checked(options, FINETUNE_OPTIONS, "finetune"))


def emit(fmt: Raw, path: Raw | None = None, span: Span | None = None) -> ast.Emit:
    """``emit torchscript|export|onnx ["path"]``.

    >>> emit(Raw("export"), Raw("out.pt2", quoted=True))
    Emit(format='export', path='out.pt2')
    """
    return ast.Emit(choice(fmt.text, EMIT_FORMATS, "emit format", fmt.span),
                    None if path is None else path.text, span)


def task(kind: Raw, function: Raw | None = None, span: Span | None = None) -> ast.Task:
    """``task classification|segmentation|lm`` or ``task python "pkg.mod:fn"``.

    >>> task(Raw("python"), Raw("pkg.tasks:seg", quoted=True))
    Task(kind='python', function='pkg.tasks:seg')
    """
    name = choice(kind.text, TASKS, "task", kind.span)
    if name != "python":
        if function is not None:
            raise RecipeError(f"task {name} takes no function", function.span,
                              'only task python names one: task python "pkg.module:function"')
        return ast.Task(name, None, span)
    if function is None:
        raise RecipeError("task python needs a function", span,
                          'name it: task python "pkg.module:function"')
    if not _FUNCTION.fullmatch(function.text):
        raise RecipeError(f"a task function looks like pkg.module:function, got "
                          f"'{quote(function.text)}'", function.span,
                          'e.g. task python "mypkg.tasks:segmentation"')
    return ast.Task(name, function.text, span)


def trace(mode: Raw, span: Span | None = None) -> ast.TraceStmt:
    """``trace auto|symbolic|export``.

    >>> trace(Raw("symbolic"))
    TraceStmt(mode='symbolic')
    """
    return ast.TraceStmt(choice(mode.text, TRACE_MODES, "trace mode", mode.span), span)


def allow(what: Raw, span: Span | None = None) -> ast.Allow:
    """``allow inexact layernorm``; words are compared with single spaces between them.

    >>> allow(Raw("inexact   layernorm"))
    Allow(what='inexact layernorm')
    """
    return ast.Allow(choice(" ".join(what.text.split()), ALLOWANCES, "allowance", what.span),
                     span)


# ---- criterion and amount --------------------------------------------------------------------

def criterion(name: Raw, args: Iterable[Option] = (), span: Span | None = None) -> ast.Criterion:
    """``NAME(ARG=VALUE, ...)``, checked against the criteria registry.

    >>> criterion(Raw("oracle"), [Option("signed", Raw("true"))])
    Criterion(name='oracle', args=(('signed', True),))
    """
    declared = spec(choice(name.text, CRITERIA, "criterion", name.span))
    values: dict = {}
    for option in args:
        argument = declared.argument(option.keyword)
        if argument is None:
            raise RecipeError(f"unknown argument '{quote(option.keyword)}' for {declared.name}",
                              option.span, _argument_hint(declared, option.keyword))
        if option.keyword in values:
            raise RecipeError(f"argument '{option.keyword}' given twice", option.span)
        values[option.keyword] = hinted(argument.check, option.value,
                                        f"{declared.name}({option.keyword}=...)",
                                        f"{option.keyword}: {argument.doc}")
    return ast.Criterion(declared.name, tuple(sorted(values.items())), span)


def _argument_hint(declared: CriterionSpec, arg: str) -> str:
    names = declared.argument_names
    if not names:
        return f"{declared.name} takes no arguments"
    return did_you_mean(arg, names) + f"{declared.name} takes {', '.join(names)}"


def amount(verb: str, quantity: Raw, unit: Raw | None = None,
           span: Span | None = None) -> ast.Amount:
    """``keep|remove QUANTITY [UNIT]``: a whole number with a unit is a count, anything else
    a fraction; errors point at ``span`` (the whole amount).

    >>> amount("keep", Raw("48"), Raw("channels"))
    Amount(kind='count', value=48, unit='channels')
    """
    name = "channels" if unit is None else choice(unit.text, UNITS, "unit", unit.span)
    at = Raw(quantity.text, span)
    if unit is not None and INTEGER.fullmatch(quantity.text):
        return _count(verb, at, name, span)
    kept = _fraction(verb, at, name)
    return ast.Amount("fraction", float(kept if verb == "keep" else 1 - kept), name, span,
                      verb, quantity.text.endswith("%"))


def _count(verb: str, quantity: Raw, unit: str, span: Span | None) -> ast.Amount:
    if verb != "keep":
        raise RecipeError(f"{verb} takes a fraction, not a number of {unit}", span,
                          f"write {verb} 0.25 {unit} or {verb} 25% {unit} for a share, or "
                          f"keep N {unit} for a count")
    count = hinted(POSITIVE, quantity, _COUNT_OF[unit],
                   f"keep N {unit} keeps N {unit} of each group; keep 0.5 {unit} keeps half")
    return ast.Amount("count", count, unit, span)


def _fraction(verb: str, quantity: Raw, unit: str) -> Decimal:
    """The fraction to keep or remove; hints say what the number means."""
    try:
        return (KEEP if verb == "keep" else REMOVE).decimal(quantity, verb)
    except RecipeError as err:
        hint = err.hint
        if hint is None:
            hint = f"{verb} is the fraction of {unit} to {verb}: {verb} 0.3 or {verb} 30%"
        elif verb == "keep" and INTEGER.fullmatch(quantity.text):
            hint += f", or 'keep {quantity.text} {unit}' for {_COUNT_OF[unit]}"
        raise RecipeError(err.message, err.span, hint) from None


# ---- selectors and predicates ----------------------------------------------------------------

def selector(pattern: Raw) -> ast.Selector:
    """A checked Selector: braces, ranges and characters are validated by Glob.

    >>> selector(Raw("conv{8..13}"))
    Selector(pattern='conv{8..13}')
    """
    Glob(pattern.text, pattern.span)
    return ast.Selector(pattern.text, pattern.span)


def compare(attr: Raw, op: str, value: Raw, span: Span | None = None) -> ast.Compare:
    """``ATTR OP VALUE``.

    >>> compare(Raw("index"), ">", Raw("3"))
    Compare(attr='index', op='>', value=3)
    """
    name = choice(attr.text, ast.ATTRIBUTES, "attribute", attr.span)
    return ast.Compare(name, op, _predicate_value(name, op, value, span), span)


def in_list(attr: Raw, values: list[Raw], negate: bool = False,
            span: Span | None = None) -> ast.InList:
    """``ATTR [not] in [V, ...]``.

    >>> in_list(Raw("kind"), [Raw("conv"), Raw("linear")], negate=True)
    InList(attr='kind', values=('conv', 'linear'), negate=True)
    """
    name = choice(attr.text, ast.ATTRIBUTES, "attribute", attr.span)
    return ast.InList(name, tuple(_predicate_value(name, "in", v, span) for v in values),
                      negate, span)


def _predicate_value(attr: str, op: str, raw: Raw, span: Span | None):
    """``kind`` compares with names by == / != / in; the other attributes with numbers."""
    value = to_number(raw.text, raw.span) if is_number(raw) else raw.text
    if attr == "kind":
        if not isinstance(value, str):
            raise RecipeError(f"kind is a layer kind such as conv or linear, got {value!r}",
                              span)
        if op not in ("==", "!=", "in"):
            raise RecipeError(f"kind can only be compared with ==, != or in, not {op}", span)
    elif isinstance(value, str):
        raise RecipeError(f"{attr} is a number, got '{quote(value)}'", span)
    return value


def either(left, right, span: Span | None = None) -> ast.Or:
    """``LEFT or RIGHT``.

    >>> either(compare(Raw("index"), "<", Raw("2")), compare(Raw("index"), ">", Raw("9"))).right
    Compare(attr='index', op='>', value=9)
    """
    return ast.Or(left, right, span)


def both(left, right, span: Span | None = None) -> ast.And:
    """``LEFT and RIGHT``.

    >>> type(both(compare(Raw("index"), "<", Raw("2")), compare(Raw("groups"), "==", Raw("1"))))
    <class 'pruneql.lang.ast.And'>
    """
    return ast.And(left, right, span)


def negated(operand, span: Span | None = None) -> ast.Not:
    """``not OPERAND``.

    >>> negated(compare(Raw("stride"), "==", Raw("2")))
    Not(operand=Compare(attr='stride', op='==', value=2))
    """
    return ast.Not(operand, span)


def where(pred, span: Span | None = None):
    """A whole ``where`` predicate: refuse nesting deeper than MAX_PREDICATE_DEPTH (walked
    without recursion).

    >>> pred = compare(Raw("index"), ">", Raw("1"))
    >>> for _ in range(MAX_PREDICATE_DEPTH):
    ...     pred = negated(pred)
    >>> try:
    ...     where(pred)
    ... except RecipeError as err:
    ...     print(err.message)
    predicate nested too deeply (more than 64 levels)
    """
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
