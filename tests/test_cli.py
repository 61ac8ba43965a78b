"""The command line, in-process: exit codes, output, and that errors write nothing."""
from __future__ import annotations

import json
import os

import pytest
import torch
from typer.testing import CliRunner

import pruneql
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


# ---- the installed product: names, versions, options, tables -------------------------------

def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"pruneql {pruneql.__version__}"


def test_specs_lists_the_bundled_recipes():
    result = invoke("specs", "--json")
    assert result.exit_code == 0, result.output
    found = {e["name"]: e for e in json.loads(result.stdout)}
    assert found["vgg16"]["model"] == "vgg16_cifar" and "Li et al. 2017" in found["vgg16"]["summary"]
    assert {"resnet56-a", "resnet56-a.yaml", "digits"} <= set(found)
    table = invoke("specs")
    assert "VGG-16-A" in table.output and "resnet110_cifar" in table.output


def test_bundled_recipes_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name = json.loads(invoke("plan", "vgg16", "--json").stdout)
    assert by_name["before"]["flops"] == 313_463_808
    assert json.loads(invoke("plan", "vgg16.yaml", "--json").stdout)["after"] == by_name["after"]
    wrong = invoke("plan", "vgg61")
    assert wrong.exit_code == 1 and "did you mean vgg16" in wrong.output


def test_tables_keep_layer_names_whole_at_80_columns():
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["plan", "resnet50-uniform"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output and "layer1.{0.conv3," in result.output
    assert "0.downsample.0," in result.output


def test_report_shows_input_amounts_weights_and_front_end():
    result = invoke("plan", "resnet56-a", "--input", "3x64x64")
    assert result.exit_code == 0, result.output
    assert "(input 3x64x64)" in result.output and "remove 10%" in result.output
    assert "weights: random init · front-end: torch.fx symbolic trace" in result.output


def test_evaluation_is_named(tmp_path):
    spec = tmp_path / "d.prune"
    spec.write_text("model digits_cnn\ndata digits batch 256\nprune conv1 by l1 keep 0.5\n")
    result = invoke("run", spec, "-o", tmp_path / "d.pt")
    assert result.exit_code == 0, result.output
    assert "accuracy: before" in result.output
    assert "(classification, accuracy on the val split)" in result.output


def test_trace_option_picks_the_front_end():
    result = invoke("plan", "vgg16", "--trace", "export", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frontend"] == "export"
    assert invoke("plan", "vgg16", "--trace", "jit").exit_code == 2


def test_run_groups_and_format(tmp_path):
    out = tmp_path / "v.pt2"
    result = invoke("run", "vgg16", "--format", "export", "-o", out, "--groups")
    assert result.exit_code == 0, result.output
    assert "frozen: reaches a model output" in result.output      # every group listed
    assert torch.export.load(str(out)).module()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    clash = invoke("run", "vgg16", "--format", "onnx", "-o", tmp_path / "v.pt")
    assert clash.exit_code == 1 and "the format asked for is onnx" in clash.output
    assert not (tmp_path / "v.pt").exists()


def test_seed_drives_the_random_criterion(tmp_path):
    spec = tmp_path / "r.prune"
    spec.write_text("model digits_cnn\nprune conv2 by random keep 0.5\n")
    kept = []
    for seed in (1, 2, 1):
        plan = tmp_path / f"plan{len(kept)}.json"
        result = invoke("run", spec, "-o", tmp_path / f"o{len(kept)}.pt", "--seed", seed,
                        "--plan-out", plan, "--no-verify")
        assert result.exit_code == 0, result.output
        layers = json.loads(plan.read_text())["layers"]
        kept.append(next(e["out"] for e in layers if e["name"] == "conv2"))
    assert kept[0] == kept[2] != kept[1]


def test_sensitivity_without_matplotlib_writes_the_table(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("no matplotlib here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    spec = tmp_path / "s.prune"
    spec.write_text("model digits_cnn\ndata digits batch 256 val 0.1\nprune conv1 by taylor keep 0.5\n")
    result = invoke("sensitivity", spec, "--fractions", "0.5", "-o", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "no plot: matplotlib is not installed" in result.output
    assert "ranked by l1" in result.output            # taylor falls back to L1 in the sweep
    header = (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert {"criterion", "metric", "accuracy", "fraction"} <= set(header)
    assert json.loads((tmp_path / "s.json").read_text())[0]["criterion"] == "l1"
    assert not (tmp_path / "s.png").exists()
