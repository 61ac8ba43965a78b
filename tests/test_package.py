"""The installed package is the product: the wheel carries the recipes, the grammar, the
demo's data and the license, and installed into a fresh virtual environment (torch pinned
first) it plans a bundled recipe from an empty directory."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH = "torch==2.13.0"
BENCH_ONLY = {"torch-pruning", "timm", "ultralytics", "segmentation-models-pytorch",
              "transformers"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    """The wheel, built from this checkout (offline when hatchling is installed)."""
    out = tmp_path_factory.mktemp("wheel")
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation,
                    "--wheel-dir", str(out), ROOT], check=True, timeout=600)
    (found,) = out.glob("pruneql-*.whl")
    return str(found)


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def test_wheel_carries_recipes_grammar_data_and_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    specs = {f for f in os.listdir(os.path.join(ROOT, "specs")) if f.endswith((".prune", ".yaml"))}
    assert {f"pruneql/specs/{f}" for f in specs} <= names
    assert {"pruneql/grammars/pruneql.lark", "pruneql/zoo/digits_cnn.pt",
            "pruneql/data/digits.npz", "pruneql/data/DIGITS_LICENSE.txt"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "bench/", "specs/")) for n in names)


def test_wheel_metadata_has_the_entry_point_extras_and_urls(wheel):
    archive = zipfile.ZipFile(wheel)
    info = next(n for n in archive.namelist() if n.endswith(".dist-info/"
                                                                "entry_points.txt"))
    assert "pruneql = pruneql.cli:main" in archive.read(info).decode()
    meta = archive.read(info.replace("entry_points.txt", "METADATA")).decode()
    assert "License: Apache-2.0" in meta or "License-Expression: Apache-2.0" in meta
    assert "Project-URL:" in meta and "Classifier: License :: OSI Approved" in meta
    for extra in ("test", "onnx", "images", "bench", "plot"):
        assert f"Provides-Extra: {extra}" in meta


def test_extras_keep_benchmarks_out_of_the_tests():
    extras = _pyproject()["project"]["optional-dependencies"]

    def names(extra):
        return {req.split(">")[0].split("=")[0].split("[")[0].strip().lower()
                for req in extras[extra]}
    assert BENCH_ONLY | {"matplotlib"} <= names("bench")
    assert not BENCH_ONLY & names("test")
    assert {"onnx", "onnxscript", "onnxruntime"} <= names("test") & names("onnx")
    assert names("images") == {"pillow"}


@pytest.mark.package
def test_installed_wheel_plans_a_bundled_recipe_from_an_empty_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, TORCH], check=True, timeout=600)      # pinned first: no CUDA
    subprocess.run([*pip, wheel], check=True, timeout=600)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PRUNEQL_DEBUG")}
    run = subprocess.run([str(venv / "bin" / "pruneql"), "plan", "vgg16", "--json"], cwd=empty,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["before"]["flops"] == 313_463_808 and report["weights"] == "random init"
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list"],
                            capture_output=True, text=True, check=True).stdout.lower()
    assert "nvidia" not in listed and not os.listdir(empty)
