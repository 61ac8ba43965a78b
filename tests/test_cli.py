"""The command line, in-process: exit codes, output, and that errors write nothing."""
from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from pruneql import zoo
from pruneql.cli import app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VGG = os.path.join(ROOT, "specs", "vgg16.prune")
runner = CliRunner(env={"COLUMNS": "250"})


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "vgg16.pt"
    torch.save(zoo.build("vgg16_cifar", seed=3).state_dict(), path)
    return path


def test_plan_json_has_the_contract_fields():
    result = invoke("plan", VGG, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data["before"]["flops"], int) and isinstance(data["after"]["params"], int)
    assert data["before"]["flops"] == 313_463_808
    assert {"groups", "layers"} <= set(data)
    selected = [g for g in data["groups"] if g["selected"]]
    assert len(selected) == 7 and all(g["line"] == 6 for g in selected)


def test_plan_table_and_groups():
    result = invoke("plan", VGG, "--groups")
    assert result.exit_code == 0, result.output
    assert "FLOPs" in result.output and "512 → 256" in result.output
    assert "frozen: reaches a model output" in result.output


def test_run_writes_torchscript_matching_the_plan(tmp_path, vgg_weights):
    out = tmp_path / "vgg16-a.pt"
    result = invoke("run", VGG, vgg_weights, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    loaded = torch.jit.load(str(out))
    assert sum(p.numel() for p in loaded.parameters()) == data["after"]["params"]
    assert loaded(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert data["verify"]["passed"]


def test_run_refuses_to_overwrite_without_force(tmp_path, vgg_weights):
    out = tmp_path / "out.pt"
    out.write_bytes(b"keep me")
    result = invoke("run", VGG, vgg_weights, "-o", out)
    assert result.exit_code == 1 and "already exists" in result.output
    assert out.read_bytes() == b"keep me"
    assert invoke("run", VGG, vgg_weights, "-o", out, "--force").exit_code == 0
    assert out.read_bytes() != b"keep me"


def test_run_never_overwrites_its_input(tmp_path, vgg_weights):
    copy = tmp_path / "model.pt"
    copy.write_bytes(vgg_weights.read_bytes())
    result = invoke("run", VGG, copy, "-o", copy, "--force")
    assert result.exit_code == 1 and "refusing to overwrite the input" in result.output
    assert copy.read_bytes() == vgg_weights.read_bytes()


def test_export_output(tmp_path):
    out = tmp_path / "vgg.pt2"
    result = invoke("run", VGG, "-o", out)
    assert result.exit_code == 0, result.output
    program = torch.export.load(str(out))
    assert program.module()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_missing_model_file(tmp_path):
    result = invoke("run", VGG, tmp_path / "nope.pt", "-o", tmp_path / "o.pt")
    assert result.exit_code == 1 and "does not exist" in result.output
    assert not (tmp_path / "o.pt").exists()


def test_unreadable_model_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    result = invoke("plan", VGG, bad)
    assert result.exit_code == 1 and "cannot read model file" in result.output


def test_pickled_module_needs_trust(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(zoo.build("vgg16_cifar"), path)
    result = invoke("plan", VGG, path)
    assert result.exit_code == 1 and "--trust-pickle" in result.output
    trusted = invoke("plan", VGG, path, "--trust-pickle", "--json")
    assert trusted.exit_code == 0, trusted.output


def test_weights_of_the_wrong_architecture(tmp_path):
    path = tmp_path / "r56.pt"
    torch.save(zoo.build("resnet56_cifar").state_dict(), path)
    result = invoke("plan", VGG, path)
    assert result.exit_code == 1 and "do not fit model 'vgg16_cifar'" in result.output


def test_selector_matching_nothing(tmp_path):
    spec = tmp_path / "typo.prune"
    spec.write_text("model vgg16_cifar\nprune conv14 by l1 keep 0.5\n")
    result = invoke("run", spec, "-o", tmp_path / "o.pt")
    assert result.exit_code == 1
    assert "selector 'conv14' matches no conv or linear layer" in result.output
    assert "conv1" in result.output and not (tmp_path / "o.pt").exists()


def test_untraceable_model(tmp_path):
    spec = tmp_path / "bad.prune"
    spec.write_text("model tests.untraceable:build\ninput 3x8x8\nprune conv by l1 keep 0.5\n")
    result = invoke("plan", spec, "--trust-code")     # the recipe names the factory
    assert result.exit_code == 1 and "cannot trace the model" in result.output


def test_zoo_lists_models():
    result = invoke("zoo", "--json")
    assert result.exit_code == 0
    assert {"vgg16_cifar", "resnet56_cifar", "resnet50"} <= {e["name"] for e in json.loads(result.output)}


def test_bad_input_option():
    result = invoke("plan", VGG, "--input", "3xfoo")
    assert result.exit_code == 2 and "3x32x32" in result.output
