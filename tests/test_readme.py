"""Every example in README.md runs: recipes are planned, Python is executed, and the
`$ pruneql ...` command lines are invoked (with a real weights file for model.pt)."""
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


def _files(tmp_path) -> dict:
    """The files README commands name, made for real: weights and a small CIFAR-like set."""
    weights = tmp_path / "model.pt"
    torch.save(zoo.build("vgg16_cifar").state_dict(), weights)
    rng = np.random.default_rng(0)
    sample = tmp_path / "cifar_sample.npz"
    np.savez(sample, x=rng.integers(0, 255, (30, 3, 32, 32), dtype=np.uint8),
             y=rng.integers(0, 10, 30))
    return {"model.pt": str(weights), "npz:cifar_sample.npz": f"npz:{sample}"}


@pytest.mark.parametrize("line", _commands())
def test_console_examples_run(line, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    files = _files(tmp_path)
    words = shlex.split(line)[1:]
    args = [str(tmp_path / a) if i and words[i - 1] == "-o" else files.get(a, a)
            for i, a in enumerate(words)]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert result.exit_code == 0, result.output
