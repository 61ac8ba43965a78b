"""Progress is for a person at a terminal: a fake TTY sees the passes and the bars; ``--json``
(and anything not a terminal) gets exactly one JSON object on stdout, errors included."""
from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

import pruneql
from pruneql import cli
from pruneql.cli import app
from pruneql.terminal import Live

TINY = ("model digits_cnn; input 1x8x8; data digits batch 256 val 0.1;\n"
        "prune conv1, conv2 by {criterion} keep 0.5;\n")
runner = CliRunner(env={"COLUMNS": "200"})


class _Terminal:
    """Consoles that claim to be a terminal, writing to buffers the test reads."""

    def __init__(self):
        self.stdout, self.stderr = io.StringIO(), io.StringIO()

    @property
    def out(self) -> Console:
        return Console(file=self.stdout, force_terminal=True, width=160)

    @property
    def err(self) -> Console:
        return Console(file=self.stderr, force_terminal=True, width=160)


@pytest.fixture
def terminal(monkeypatch):
    fake = _Terminal()
    monkeypatch.setattr(cli, "_io", fake)
    return fake


@pytest.fixture
def recipe(tmp_path):
    def write(criterion: str = "l1", extra: str = "") -> str:
        path = tmp_path / "tiny.prune"
        path.write_text(TINY.format(criterion=criterion) + extra)
        return str(path)
    return write


def test_sensitivity_shows_trials_with_a_count_on_a_terminal(terminal, recipe, tmp_path):
    result = runner.invoke(app, ["sensitivity", recipe(), "--fractions", "0.3,0.6",
                                 "-o", str(tmp_path / "sens")])
    assert result.exit_code == 0, result.output
    shown = terminal.stderr.getvalue()
    assert "sensitivity trials" in shown and "4/4" in shown and "fraction 0.6" in shown
    assert "loading the data" in shown            # the pass spinner before it
    assert "ranked by l1" in terminal.stdout.getvalue()


def test_scoring_and_finetuning_report_through_the_hook(recipe):
    """The pass hook names the criterion while scoring; fine-tuning reports its loss."""
    live = Live(Console(file=io.StringIO(), force_terminal=True, width=160))
    with live:
        pruneql.compile(recipe("taylor(batches=2)", "finetune epochs 1;\n"),
                        progress=live, hooks=(live,))
    tasks = {t.description: t for t in live.rich.tasks}
    assert "scoring channels (taylor)" in tasks
    assert tasks["finetune"].finished and "loss" in tasks["finetune"].fields["info"]
    assert not tasks["scoring channels (taylor)"].visible or \
        tasks["scoring channels (taylor)"].finished


def test_iterate_rounds_are_counted(recipe):
    live = Live(Console(file=io.StringIO(), force_terminal=True, width=160))
    with live:
        pruneql.compile(recipe("l1", "iterate 3 steps;\n"), progress=live, hooks=(live,))
    rounds = next(t for t in live.rich.tasks if t.description == "iterate rounds")
    assert (rounds.completed, rounds.total) == (3, 3)


def test_json_gets_no_progress_even_on_a_terminal(terminal, recipe):
    result = runner.invoke(app, ["plan", recipe(), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(terminal.stdout.getvalue())["before"]["flops"] > 0
    assert terminal.stderr.getvalue() == ""


def test_not_a_terminal_gets_no_progress(recipe, tmp_path):
    result = runner.invoke(app, ["run", recipe(), "-o", str(tmp_path / "o.pt")])
    assert result.exit_code == 0, result.output
    assert "━" not in result.stderr and "scoring" not in result.stderr


@pytest.mark.parametrize("args", [
    ["plan", "no-such-recipe", "--json"],
    ["run", "vgg16", "missing.pt", "--json"],
    ["plan", "vgg16", "--json", "--input", "3xfoo"],
    ["plan", "vgg16", "--json", "--seed", "many"],
    ["sensitivity", "vgg16", "--json", "--fractions", "half"],
], ids=["recipe", "model", "input", "seed", "fractions"])
def test_json_errors_are_one_object_on_stdout(args):
    result = runner.invoke(app, args)
    assert result.exit_code in (1, 2)
    found = json.loads(result.stdout)          # the whole of stdout: one object
    assert found["error"] and "stage" in found


def test_run_says_the_weights_are_a_random_initialisation(tmp_path):
    result = runner.invoke(app, ["run", "vgg16", "-o", str(tmp_path / "o.pt"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weights"] == "random init"
    assert "warning: no model file: pruned a random initialisation" in result.stderr
    table = runner.invoke(app, ["run", "vgg16", "-o", str(tmp_path / "p.pt")])
    assert "weights: random init" in table.stdout and "random initialisation" in table.stderr


def test_a_bug_is_one_screen_not_a_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(cli.api, "spec_entries", broken)
    result = runner.invoke(app, ["specs", "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert json.loads(result.stdout)["stage"] == "internal"
    assert isinstance(result.exception, SystemExit)
