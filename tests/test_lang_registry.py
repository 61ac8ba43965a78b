"""The criterion and data-source registries: what they declare, how implementations attach,
and that the language reads them (and stays free of torch and of the compiler)."""
from __future__ import annotations

import ast as pyast
from pathlib import Path

import pytest

from pruneql.errors import NotImplementedStatement, RecipeError, Span
from pruneql.lang import ast, criteria, data_sources, parse_text
from pruneql.lang.parse import CRITERION_ARGS
from pruneql.lang.registry import Registry
from pruneql.lang.values import Raw
from pruneql.lang.vocabulary import DATA_SOURCES

LANG = Path(__file__).resolve().parents[1] / "pruneql" / "lang"

# criterion → {argument: (type, a value it accepts, a value it refuses)}
DECLARED = {
    "l1": {}, "l2": {},
    "random": {"seed": ("int", "0", "-1")},
    "taylor": {"batches": ("int", "1", "0"), "flops_reg": ("float", "0", "-0.1")},
    "activation": {"stat": ("choice", "std", "max"), "batches": ("int", "3", "1.5")},
    "ensemble": {"samples": ("int", "1", "0"), "keep": ("fraction", "0.5", "1"),
                 "batches": ("int", "2", "0"), "ridge": ("float", "0", "-1")},
    "oracle": {"batches": ("int", "1", "0"), "signed": ("bool", "true", "1")},
}


def test_the_declared_criteria():
    assert criteria.NAMES == ast.CRITERIA == tuple(sorted(DECLARED)) == tuple(CRITERION_ARGS)
    assert criteria.data_criteria() == ("activation", "ensemble", "oracle", "taylor")
    for name, arguments in DECLARED.items():
        declared = criteria.spec(name)
        assert declared.argument_names == tuple(sorted(arguments)) and declared.description
        for arg, (kind, good, bad) in arguments.items():
            argument = declared.argument(arg)
            assert argument.type == kind and argument.doc, (name, arg)
            argument.check(Raw(good), arg)
            with pytest.raises(RecipeError):
                argument.check(Raw(bad), arg)


@pytest.mark.parametrize("name", criteria.NAMES)
def test_defaults_pass_their_own_checks(name):
    for argument in criteria.spec(name).arguments:
        if argument.default is not None:
            text = str(argument.default).lower()
            assert argument.check(Raw(text), argument.name) == argument.default


def test_the_parser_reads_the_registry():
    for name in criteria.NAMES:
        for argument in criteria.spec(name).arguments:
            err = _error(f"prune a by {name}({argument.name}=\"x\") keep 0.5")
            assert err.message.startswith(f"{name}({argument.name}=...) must be")
            assert err.hint.startswith(f"{argument.name}: ") or err.hint.startswith("e.g.")


def _error(source: str) -> RecipeError:
    with pytest.raises(RecipeError) as caught:
        parse_text(source)
    return caught.value


def test_registering_an_implementation():
    registry = Registry("criterion", [criteria.spec("l1"), criteria.spec("taylor")])

    @registry.register("l1")
    def l1(module, in_mask=None):
        return "scores"

    assert registry.implementation("l1") is l1 and registry.implemented() == ("l1",)
    assert registry.register("l1")(l1) is l1                   # the same function again: fine
    with pytest.raises(ValueError, match="already implemented by"):
        registry.register("l1")(lambda module: None)
    with pytest.raises(ValueError, match="it is not declared"):
        registry.register("l9")
    span = Span(2, 12, 18, "prune a by taylor keep 0.5")
    with pytest.raises(NotImplementedStatement, match="not implemented yet") as caught:
        registry.implementation("taylor", span)
    assert caught.value.span is span and caught.value.hint == "implemented: l1"
    with pytest.raises(KeyError):
        registry.implementation("l9")


def test_the_module_level_registries():
    assert criteria.CRITERIA.names == criteria.NAMES and "taylor" in criteria.CRITERIA
    assert criteria.register == criteria.CRITERIA.register
    assert data_sources.register == data_sources.SOURCES.register


def test_the_declared_data_sources():
    sources = data_sources.SOURCES
    assert sources.names == DATA_SOURCES == ("cifar10", "digits", "imagefolder", "npz",
                                             "python", "tokens")
    paths = {name: sources[name].path for name in sources.names}
    assert paths == {"cifar10": "required", "digits": "none", "imagefolder": "required",
                     "npz": "required", "python": "required", "tokens": "optional"}
    for name in sources.names:
        declared = sources[name]
        assert set(data_sources.COMMON_OPTIONS) <= set(declared.options)
        assert declared.takes("resize") == declared.takes("normalize") == (name == "imagefolder")
        assert parse_text(declared.example).statements[0].source == name


def _imports(path: Path) -> set[str]:
    tree = pyast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in pyast.walk(tree):
        if isinstance(node, pyast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, pyast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(LANG.glob("*.py")), ids=lambda p: p.name)
def test_the_language_imports_no_torch_and_no_compiler(path):
    for module in _imports(path):
        assert module.split(".")[0] != "torch", (path.name, module)
        assert not module.startswith(("pruneql.graph", "pruneql.passes", "pruneql.criteria",
                                      "pruneql.data", "pruneql.api")), (path.name, module)
