"""Tasks beyond classification: segmentation (mIoU), language modelling (token accuracy)
and a user's own loss (`task python`) drive scoring, fine-tuning and every report."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pruneql
from pruneql import zoo
from pruneql.tasks import Task


class TinySegmenter(nn.Module):
    """An encoder-decoder with a skip connection: (N, 3, 16, 16) → (N, 3, 16, 16) logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
        self.up = nn.ConvTranspose2d(16, 16, 2, 2)
        self.head = nn.Conv2d(32, 3, 1)

    def forward(self, x):
        e = self.enc(x)
        return self.head(torch.cat([e, self.up(self.down(e))], 1))


@pytest.fixture(scope="module")
def segmentation_npz(tmp_path_factory):
    """Images whose class map is which colour channel is brightest (255 at the border)."""
    rng = np.random.default_rng(0)
    x = rng.random((48, 3, 16, 16)).astype(np.float32)
    y = x.argmax(1).astype(np.int64)
    y[:, 0, :] = 255
    path = tmp_path_factory.mktemp("seg") / "seg.npz"
    np.savez(path, x=x, y=y)
    return str(path)


def test_segmentation_is_scored_tuned_and_reported_in_miou(segmentation_npz):
    recipe = (f'data npz "{segmentation_npz}" batch 16 val 0.25\ntask segmentation\n'
              f"prune enc.0 by taylor keep 0.5\nfinetune epochs 2 lr 0.05 select best\n")
    result = pruneql.compile(recipe, TinySegmenter(), example_inputs=torch.randn(1, 3, 16, 16))
    report = result.report.to_dict()
    evaluation = report["evaluation"]
    assert evaluation["task"] == "segmentation" and evaluation["metric"] == "miou"
    assert evaluation["split"] == "val" and evaluation["optimistic"]     # selected on val
    assert set(evaluation["before"]) >= {"miou", "pixel_accuracy", "loss"}
    assert all(0.0 <= report["accuracy"][k] <= 1.0 for k in ("before", "pruned", "finetuned"))
    assert report["accuracy"]["finetuned"] > report["accuracy"]["pruned"]   # it learns
    assert report["verify"]["passed"]


def test_miou_of_a_perfect_and_a_wrong_prediction():
    task = Task.named("segmentation")
    target = torch.tensor([[[0, 1], [1, 255]]])
    right = torch.nn.functional.one_hot(torch.tensor([[[0, 1], [1, 0]]]), 2).permute(0, 3, 1, 2)
    meter = task.meter()
    meter.add(right.float() * 5, target)
    assert meter.result()["miou"] == 1.0 and meter.result()["pixel_accuracy"] == 1.0
    meter = task.meter()
    meter.add(1 - right.float(), target)
    assert meter.result()["miou"] == 0.0


def test_language_model_scored_on_the_bundled_corpus():
    model = zoo.llama.llama_tiny(num_layers=1)
    recipe = ("data tokens batch 32\ntask lm\nprune gate_proj by taylor(batches=2) keep 0.5\n")
    result = pruneql.compile(recipe, model, example_inputs=zoo.example_input(
        "llama_tiny", shape=(64,)))
    report = result.report.to_dict()
    assert report["evaluation"]["metric"] == "token_accuracy"
    assert "perplexity" in report["evaluation"]["before"]
    assert report["verify"]["passed"]


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 16), nn.Linear(16, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))).squeeze(-1)


def regression_task(model):
    """A user's task: mean squared error, and the negative MSE as a metric."""
    def loss(outputs, targets):
        return torch.nn.functional.mse_loss(outputs, targets)

    def metric(outputs, targets):
        return -float(torch.nn.functional.mse_loss(outputs, targets))
    return loss, metric


def regression_data():
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    dataset = torch.utils.data.TensorDataset(x, x.sum(1))
    return dataset, dataset


def test_a_python_task_brings_its_own_loss_and_metric():
    recipe = ('data python "tests.test_tasks:regression_data" batch 16\n'
              'task python "tests.test_tasks:regression_task"\n'
              "prune a by taylor keep 0.5\nfinetune epochs 3 lr 0.01\n")
    with pytest.raises(pruneql.PruneQLError, match="--trust-code"):
        pruneql.plan(recipe, Regressor(), example_inputs=torch.randn(1, 4))
    result = pruneql.compile(recipe, Regressor(), example_inputs=torch.randn(1, 4),
                             trust_code=True)
    report = result.report.to_dict()
    assert report["evaluation"]["task"] == "python" and report["evaluation"]["metric"] == "metric"
    assert report["accuracy"]["finetuned"] > report["accuracy"]["pruned"]   # lower MSE


@pytest.mark.parametrize("name,shape,classes", [("lm", (3, 7), 11), ("segmentation", (2, 4, 5), 3)])
def test_the_reported_loss_is_the_mean_per_token_or_pixel(name, shape, classes):
    """Summed over two batches, the meter's loss is what F.cross_entropy averages over the
    tokens (pixels) that count — not a per-sequence (per-image) sum."""
    task = Task.named(name)
    g = torch.Generator().manual_seed(0)
    meter, outs, targets = task.meter(), [], []
    for _ in range(2):
        if name == "lm":
            out = torch.randn(*shape, classes, generator=g)
            y = torch.randint(0, classes, shape, generator=g)
        else:
            out = torch.randn(shape[0], classes, *shape[1:], generator=g)
            y = torch.randint(0, classes, shape, generator=g)
        y.view(-1)[0] = task.ignore_index          # ignored: not a term of the mean
        meter.add(out, y)
        outs.append(out), targets.append(y)
    out, y = torch.cat(outs), torch.cat(targets)
    if name == "lm":
        out, y = out.flatten(0, -2), y.flatten()
    want = torch.nn.functional.cross_entropy(out, y, ignore_index=task.ignore_index)
    assert meter.result()["loss"] == pytest.approx(float(want), rel=1e-6)
