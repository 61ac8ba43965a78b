"""Every example in README.md runs: recipes are planned, Python is executed, and the
`$ pruneql ...` command lines are invoked exactly as written, in an empty temporary
directory holding the files they name (real weights for model.pt, a small CIFAR-shaped
cifar_sample.npz)."""
from __future__ import annotations

import os
import re
import shlex

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import pruneql
from pruneql import zoo
from pruneql.cli import app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)


def blocks(kind: str) -> list:
    return [text for k, text in BLOCKS if k == kind]


def test_readme_has_examples():
    assert len(blocks("prune")) >= 3 and blocks("python") and blocks("yaml")


@pytest.mark.parametrize("text", blocks("prune"), ids=lambda t: t.splitlines()[0][:40])
def test_prune_examples_plan(text):
    report = pruneql.plan(text)
    assert report.after["flops"] < report.before["flops"]


@pytest.mark.parametrize("text", blocks("yaml"))
def test_yaml_examples_plan(text):
    report = pruneql.plan(pruneql.parse(text, path="example.yaml"))
    assert report.after["params"] < report.before["params"]


@pytest.mark.parametrize("text", blocks("python"))
def test_python_examples_run(text, monkeypatch):
    monkeypatch.chdir(ROOT)
    exec(compile(text, "README.md", "exec"), {})


def _commands() -> list:
    lines = []
    for text in blocks("console"):
        lines += [line[2:].split("#")[0].strip() for line in text.splitlines()
                  if line.startswith("$ pruneql ")]
    return lines


def _files(folder) -> None:
    """The files README commands name, made for real in ``folder``."""
    torch.save(zoo.build("vgg16_cifar").state_dict(), folder / "model.pt")
    rng = np.random.default_rng(0)
    np.savez(folder / "cifar_sample.npz", x=rng.integers(0, 255, (30, 3, 32, 32), dtype=np.uint8),
             y=rng.integers(0, 10, 30))


def test_commands_are_found():
    assert len(_commands()) >= 12 and all(c.startswith("pruneql ") for c in _commands())


@pytest.mark.parametrize("line", _commands())
def test_console_examples_run(line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, shlex.split(line)[1:])
    assert result.exit_code == 0, result.output
