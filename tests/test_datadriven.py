"""Data-driven passes: the demo, sensitivity analysis, gradual pruning, fine-tuning and
distributed fine-tuning under torchrun."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import pruneql
from pruneql import zoo
from pruneql.cli import app
from pruneql.demo import demo, resource

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
runner = CliRunner(env={"COLUMNS": "200"})


def trained_digits():
    model = zoo.build("digits_cnn")
    model.load_state_dict(torch.load(resource("zoo", "digits_cnn.pt"), weights_only=True))
    return model


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    return demo(str(tmp_path_factory.mktemp("demo") / "d.pt"))


def test_demo_meets_its_contract(demo_report):
    before, after, acc = demo_report["before"], demo_report["after"], demo_report["accuracy"]
    assert isinstance(before["flops"], int) and isinstance(after["params"], int)
    assert after["flops"] <= 0.5 * before["flops"]
    assert all(0.0 <= acc[k] <= 1.0 for k in ("before", "pruned", "finetuned"))
    assert acc["finetuned"] >= acc["before"] - 0.01 > acc["pruned"]
    assert demo_report["verify"]["passed"]
    loaded = torch.jit.load(demo_report["output"])
    assert sum(p.numel() for p in loaded.parameters()) == after["params"]


def test_demo_is_deterministic(demo_report, tmp_path):
    again = demo(str(tmp_path / "again.pt"))
    for key in ("before", "after", "accuracy", "history"):
        assert again[key] == demo_report[key]


def test_llama_demo_trains_prunes_exactly_and_recovers(tmp_path):
    """`pruneql demo --model llama_tiny`: the dense model is trained first (no checkpoint
    ships), then heads, MLP and hidden width go, verified exactly, and one epoch of
    fine-tuning brings the perplexity back near the dense model's."""
    result = runner.invoke(app, ["demo", "--model", "llama_tiny", "--json",
                                 "-o", str(tmp_path / "llama.pt")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    ppl = {k: report["evaluation"][k]["perplexity"] for k in ("before", "pruned", "finetuned")}
    assert report["evaluation"]["metric"] == "token_accuracy"
    assert ppl["before"] < 4 < 2 * ppl["before"] < ppl["pruned"]   # trained; pruning hurts
    assert ppl["finetuned"] < 1.2 * ppl["before"]                   # and recovers
    assert report["pretraining"]["val"]["perplexity"] == pytest.approx(ppl["before"])
    assert report["verify"]["passed"] and report["verify"]["max_rel_error"] <= 1e-5
    assert report["after"]["flops"] < 0.5 * report["before"]["flops"]
    loaded = torch.jit.load(report["output"])
    tokens = torch.randint(0, 256, (2, 64))
    assert loaded(tokens).shape == (2, 64, 256)
    assert sum(p.numel() for p in loaded.parameters()) == report["after"]["params"]


def test_an_unknown_demo_is_refused():
    result = runner.invoke(app, ["demo", "--model", "resnet50"])
    assert result.exit_code == 1 and "there is no demo of 'resnet50'" in result.output


def test_demo_cli_json(tmp_path):
    result = runner.invoke(app, ["demo", "--json", "-o", str(tmp_path / "d.pt")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["accuracy"]) == {"before", "pruned", "finetuned"}
    assert data["after"]["flops"] < data["before"]["flops"]


SENSITIVE = """model digits_cnn; data digits
prune conv*, fc1 by l1 keep 0.25
skip sensitive above 2%"""


def test_skip_sensitive_skips_exactly_the_groups_above_the_threshold():
    report = pruneql.plan(SENSITIVE, trained_digits()).to_dict()
    rows = [g for g in report["groups"] if "sensitivity" in g]
    assert len(rows) == 4                                  # conv1..3 and fc1 were tried
    assert any(g["sensitivity"] > 0.02 for g in rows) and any(g["sensitivity"] <= 0.02 for g in rows)
    for g in rows:
        assert (g["skipped_line"] == 3) == (g["sensitivity"] > 0.02), g
        assert g["selected"] == (g["sensitivity"] <= 0.02)


def test_sensitivity_of_resnet56_has_one_curve_per_first_conv(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x=rng.integers(0, 255, (40, 3, 32, 32), dtype=np.uint8),
             y=rng.integers(0, 10, 40))
    spec = tmp_path / "r56.prune"
    spec.write_text("model resnet56_cifar\nprune conv1 in layer{1..3} by l1 keep 0.5\n")
    prefix = tmp_path / "sens"
    result = runner.invoke(app, ["sensitivity", str(spec), "--data", f"npz:{data}", "-o",
                                 str(prefix), "--fractions", "0.5,0.9", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    layers = {r["layer"] for r in rows}
    assert layers == {f"layer{s}.{b}.conv1" for s in (1, 2, 3) for b in range(9)}
    assert sorted(r["index"] for r in rows if r["fraction"] == 0.5) == list(range(2, 56, 2))
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    for ext in ("csv", "json", "png"):
        assert (tmp_path / f"sens.{ext}").stat().st_size > 0
    assert (tmp_path / "sens.png").read_bytes()[:4] == b"\x89PNG"


def test_sensitivity_trials_equal_a_rewrite_of_the_same_cut():
    """A trial's accuracy is the accuracy of really pruning that group alone."""
    model = trained_digits()
    rows = pruneql.api.sensitivity("model digits_cnn; data digits\nprune conv2 by l1 keep 0.5",
                                   model, fractions=[0.75])
    result = pruneql.compile("model digits_cnn; data digits\nprune conv2 by l1 keep 0.25", model)
    assert rows[0]["kept"] == 16
    assert rows[0]["accuracy"] == pytest.approx(result.report.accuracy["pruned"])


def test_iterate_prunes_gradually_and_verifies():
    model = trained_digits()
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    result = pruneql.compile("""model digits_cnn; data digits
        prune conv*, fc1 by taylor keep 0.5
        iterate 3 steps finetune 10 steps
        finetune epochs 1 lr 0.01""", model)
    report = result.report.to_dict()
    assert report["verify"]["passed"]
    assert [g["channels"]["after"] for g in report["groups"] if g["selected"]] == [16, 32, 32, 32]
    assert report["accuracy"]["finetuned"] > 0.9
    assert all(torch.equal(snapshot[k], v) for k, v in model.state_dict().items())  # untouched


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_and_two_processes(tmp_path, recipe: str) -> tuple:
    """``pruneql run RECIPE`` on the trained digits CNN, as one process and under
    ``torchrun --nproc_per_node=2``; their JSON reports (writing one.pt and two.pt)."""
    weights = tmp_path / "digits.pt"
    torch.save(trained_digits().state_dict(), weights)
    spec = tmp_path / "recipe.prune"
    spec.write_text(recipe)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    single = subprocess.run([sys.executable, "-m", "pruneql", "run", str(spec), str(weights),
                             "-o", str(tmp_path / "one.pt"), "--json"], env=env,
                            capture_output=True, text=True, timeout=300)
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             f"--master_port={_free_port()}", "-m", "pruneql", "run", str(spec),
                             str(weights), "-o", str(tmp_path / "two.pt"), "--json"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0 and double.returncode == 0, single.stderr + double.stderr
    return json.loads(single.stdout), json.loads(double.stdout)   # rank 0 alone prints: one


def test_two_process_finetune_matches_single_process(tmp_path):
    one, two = _one_and_two_processes(
        tmp_path, "model digits_cnn\ndata digits batch 32\nprune conv* by l1 keep 0.5\n"
                  "finetune epochs 2 lr 0.02 momentum 0.9\n")
    assert one["after"] == two["after"] and one["accuracy"]["pruned"] == two["accuracy"]["pruned"]
    assert abs(one["accuracy"]["finetuned"] - two["accuracy"]["finetuned"]) <= 0.02
    assert (tmp_path / "two.pt").exists()


def test_two_processes_prune_the_channels_one_process_prunes(tmp_path):
    """Taylor scores and a FLOPs budget under torchrun: both ranks hold the same pruned
    model (checked by hash inside the run) and it is the single process's, to the byte."""
    one, two = _one_and_two_processes(
        tmp_path, "model digits_cnn\ndata digits batch 32\n"
                  "prune conv*, fc1 by taylor(batches=4) keep 0.2\ntarget flops 50%\n")
    assert one["after"] == two["after"] and one["target"]["achieved"] <= 0.505
    assert (tmp_path / "one.pt").read_bytes() == (tmp_path / "two.pt").read_bytes()
