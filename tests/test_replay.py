"""Plans replayed on the user's own class: ``pruneql.apply(plan, model)`` rebuilds a fresh
instance at the pruned widths, the pruned weights load into it, and its own forward
computes what the emitted model computes. Refusals leave the model untouched."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

import pruneql
from pruneql import replay, zoo
from pruneql.cli import app

X = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))


class ResCNN(nn.Module):
    """A user's CNN: BN, residual blocks with a projection shortcut, a classifier."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.block1 = Block(width, width)
        self.block2 = Block(width, 2 * width, stride=2)
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x):
        y = self.block2(self.block1(self.stem(x)))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = nn.Sequential() if stride == 1 and c_in == c_out else \
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.short(x))


class LayerScaleNet(nn.Module):
    """A ConvNeXt-like block: channels-last MLP scaled per channel by ``gamma``."""

    def __init__(self, dim: int = 12):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.rand(dim) + 0.5)
        self.head = nn.Conv2d(dim, 5, 1)

    def forward(self, x):
        x = self.stem(x)
        y = self.fc2(F.gelu(self.fc1(x.permute(0, 2, 3, 1)))) * self.gamma
        return self.head(x + y.permute(0, 3, 1, 2))


class MobileNetish(nn.Module):
    """Expansion 1x1, a depthwise 3x3, a grouped 3x3 (2 groups), projection."""

    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(3, 16, 1)
        self.bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.grouped = nn.Conv2d(16, 24, 3, padding=1, groups=2)
        self.gn = nn.GroupNorm(4, 24)
        self.project = nn.Conv2d(24, 8, 1)

    def forward(self, x):
        y = F.relu6(self.bn(self.expand(x)))
        y = F.relu6(self.dw(y))
        return self.project(F.relu(self.gn(self.grouped(y))))


class Functional(nn.Module):
    """A conv written as ``F.conv2d(x, self.w)``, and optionally a grouped one."""

    def __init__(self, groups: int = 1):
        super().__init__()
        self.groups = groups
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.w = nn.Parameter(torch.randn(8, 8 // groups, 3, 3) * 0.2)
        self.last = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = F.relu(F.conv2d(F.relu(self.first(x)), self.w, padding=1, groups=self.groups))
        return self.last(y)


def _fresh(make, seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return make()


def _replayed(make, recipe: str, **options):
    """(compile result, a fresh instance of the class rebuilt from the plan via JSON)."""
    result = pruneql.compile(recipe, _fresh(make, 0), example_inputs=X, **options)
    plan = json.loads(replay.dumps(result.plan))
    mine = pruneql.apply(plan, _fresh(make))
    mine.load_state_dict(result.state_dict())
    return result, mine.eval()


def _same(result, mine) -> None:
    x = torch.randn(2, *X.shape[1:])
    torch.testing.assert_close(mine(x), result.module(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frontend", ["symbolic", "export"])
def test_cnn_with_bn_and_residuals(frontend):
    result, mine = _replayed(ResCNN, f"trace {frontend}; prune ** by l1 keep 0.5; skip head")
    _same(result, mine)
    assert mine.block2.conv2.out_channels == mine.block2.bn2.num_features == 16
    assert mine.head.in_features == 16 and mine.stem[0].out_channels == 8
    assert {e["name"] for e in result.plan["layers"]} >= {"stem.0", "stem.1", "block2.short.0"}


def test_the_plain_pruned_state_dict_loads_too():
    result = pruneql.compile("prune ** by l1 keep 0.5; skip head", _fresh(ResCNN, 0),
                             example_inputs=X)
    mine = pruneql.apply(result.plan, _fresh(ResCNN))
    mine.load_state_dict(result.module.state_dict())       # keys are the user's own
    _same(result, mine.eval())


def test_layer_scale_parameter_is_sliced():
    result, mine = _replayed(LayerScaleNet, "prune stem, fc1 by l1 keep 0.5")
    _same(result, mine)
    assert mine.gamma.shape == (6,) and isinstance(mine.gamma, nn.Parameter)
    assert {"name": "gamma", "keep": result.plan["tensors"][0]["keep"]} in result.plan["tensors"]
    assert mine.fc1.out_features == 24 and mine.fc2.in_features == 24


def test_depthwise_grouped_and_groupnorm():
    result, mine = _replayed(MobileNetish, "prune expand, grouped by l1 keep 0.5")
    _same(result, mine)
    assert (mine.dw.in_channels, mine.dw.out_channels, mine.dw.groups) == (8, 8, 8)
    assert mine.grouped.groups == 1 and mine.grouped.out_channels == 12
    assert (mine.gn.num_groups, mine.gn.num_channels) == (2, 12)


def test_functional_conv_weights_are_sliced_by_their_own_names():
    result, mine = _replayed(Functional, "prune first, conv2d by l1 keep 0.5")
    _same(result, mine)
    assert mine.w.shape == (4, 4, 3, 3)
    assert result.plan["renames"] == {"conv2d.weight": "w"}


def test_a_grouped_functional_conv_is_refused_with_the_reason():
    result = pruneql.compile("prune first, conv2d by l1 keep 0.5", _fresh(lambda: Functional(2)),
                             example_inputs=X)
    with pytest.raises(replay.ReplayError, match="functional grouped convolution"):
        pruneql.apply(result.plan, _fresh(lambda: Functional(2)))


class EmbeddingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.fc, self.out = nn.Embedding(20, 8), nn.Linear(8, 16), nn.Linear(16, 5)

    def forward(self, tokens):
        return self.out(torch.relu(self.fc(self.emb(tokens)))).mean(1)


def test_an_embedding_replays_by_its_columns():
    tokens = torch.randint(0, 20, (1, 6), generator=torch.Generator().manual_seed(0))
    result = pruneql.compile("prune emb, fc by l1 keep 0.5", _fresh(EmbeddingNet, 0),
                             example_inputs=tokens)
    entry = next(e for e in result.plan["layers"] if e["name"] == "emb")
    assert entry["attributes"] == {"embedding_dim": [8, 4]} and entry["tensors"] == {
        "weight": {"1": "out"}}
    mine = pruneql.apply(json.loads(replay.dumps(result.plan)), _fresh(EmbeddingNet))
    mine.load_state_dict(result.state_dict())
    assert mine.emb.weight.shape == (20, 4) and mine.fc.in_features == 4
    x = torch.randint(0, 20, (3, 6))
    torch.testing.assert_close(mine.eval()(x), result.module(x), rtol=1e-5, atol=1e-6)


def test_a_llama_with_heads_and_hidden_width_pruned_replays_with_its_attributes():
    # heads (reshape sizes read from the input: the model's code follows them) and the
    # hidden width (each RMSNorm's eps must scale by n/n'; it is an attribute of the norm):
    # compile tries the model rebuilt from the plan and records that it matched
    spec = ("model llama_tiny; input 16; prune q_proj by l2 keep 0.5 heads; "
            "prune embed_tokens by l2 keep 0.75")
    result = pruneql.compile(spec)
    plan = json.loads(replay.dumps(result.plan))
    assert plan["blockers"] == [] and plan["checked"]["max_rel_error"] <= 1e-5
    eps = {(a["module"], a["name"]): (a["before"], a["after"]) for a in plan["attributes"]}
    assert eps[("model.norm", "variance_epsilon")] == pytest.approx((1e-6, 1e-6 * 128 / 96))
    mine = pruneql.apply(plan, zoo.build("llama_tiny", seed=3))
    mine.load_state_dict(result.state_dict())
    assert mine.model.norm.variance_epsilon == pytest.approx(1e-6 * 128 / 96)
    tokens = torch.randint(0, 100, (3, 16), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(mine.eval()(tokens), result.module(tokens), rtol=1e-5, atol=1e-6)


def test_the_trial_replay_after_fine_tuning_leaves_the_callers_model_alone():
    """The rebuilt copy shares the caller's tensors until the plan slices them (heads only:
    the MLPs and norms keep theirs); the fine-tuned weights are assigned to it, never
    copied into a tensor it shares."""
    model = zoo.build("llama_tiny", seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = ("model llama_tiny; input 64; data tokens batch 32; task lm; "
            "prune q_proj by l2 keep 0.5 heads; finetune epochs 1 lr 0.01 optimizer adam")
    result = pruneql.compile(spec, model)
    assert result.plan["blockers"] == [] and "checked" in result.plan     # the trial ran
    assert result.report.history                                           # it fine-tuned
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_vit_whose_forward_cannot_follow_its_heads_is_refused_with_what_failed():
    result = pruneql.compile("model vit_tiny; prune qkv by l2 keep 0.5 heads")
    assert result.plan["blockers"] and "attributes" not in result.plan
    assert all("rebuilt from the plan, the model's forward() fails" in b["why"]
               for b in result.plan["blockers"])
    with pytest.raises(replay.ReplayError, match="cannot be replayed on the model's own code"):
        pruneql.apply(result.plan, zoo.build("vit_tiny"))


def test_a_zoo_resnet_replays():
    spec = "model resnet18; input 3x32x32; prune ** by l1 keep 0.5 round 8; skip /conv1"
    result = pruneql.compile(spec)
    mine = pruneql.apply(result.plan, zoo.build("resnet18", seed=5))
    mine.load_state_dict(result.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(mine.eval()(x), result.module(x), rtol=1e-4, atol=1e-5)


def test_another_structure_is_refused_and_left_alone():
    result = pruneql.compile("prune ** by l1 keep 0.5; skip head", _fresh(ResCNN, 0),
                             example_inputs=X)
    other = ResCNN(width=12)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(pruneql.PruneQLError, match="structure fingerprint differs") as err:
        pruneql.apply(result.plan, other)
    assert "ResCNN" in err.value.hint
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())


def test_applying_twice_is_refused():
    result = pruneql.compile("prune ** by l1 keep 0.5; skip head", _fresh(ResCNN, 0),
                             example_inputs=X)
    mine = pruneql.apply(result.plan, _fresh(ResCNN))
    with pytest.raises(replay.ReplayError, match="already has the plan's pruned widths"):
        pruneql.apply(result.plan, mine)


def test_other_versions_and_other_files_are_refused(tmp_path):
    plan = pruneql.compile("prune stem.0 by l1 keep 0.5", _fresh(ResCNN, 0),
                           example_inputs=X).plan
    with pytest.raises(replay.ReplayError, match="plan version 2 is not supported"):
        pruneql.apply({**plan, "version": 2}, _fresh(ResCNN))
    with pytest.raises(replay.ReplayError, match="not a PruneQL plan"):
        pruneql.apply({"layers": []}, _fresh(ResCNN))
    with pytest.raises(replay.ReplayError, match="does not exist"):
        pruneql.apply(tmp_path / "nope.json", _fresh(ResCNN))


def test_constants_in_forward_block_the_replay():
    """Option-A shortcuts pad channels by a constant of forward(): the plan says why."""
    result = pruneql.compile("model resnet56_cifar; prune conv2 in layer1 by l1 keep 0.5")
    assert any("channel padding" in b["why"] for b in result.plan["blockers"])
    with pytest.raises(replay.ReplayError, match="channel padding") as err:
        pruneql.apply(result.plan, zoo.build("resnet56_cifar"))
    assert "emitted model" in err.value.hint


def test_plan_records_recipe_and_fingerprint():
    text = "prune stem.0 by l1 keep 0.5"
    result = pruneql.compile(text, _fresh(ResCNN, 0), example_inputs=X)
    plan = result.plan
    assert plan["format"] == "pruneql-plan" and plan["version"] == replay.VERSION
    assert plan["recipe"]["text"] == text
    assert plan["recipe"]["sha256"] == __import__("hashlib").sha256(text.encode()).hexdigest()
    assert plan["model"]["fingerprint"] == replay.fingerprint(ResCNN())
    stem = next(e for e in plan["layers"] if e["name"] == "stem.0")
    assert stem["in"] is None and len(stem["out"]) == 8 and stem["attributes"] == {
        "out_channels": [16, 8]}


def test_compile_writes_the_plan(tmp_path):
    path = tmp_path / "plan.json"
    pruneql.compile("prune stem.0 by l1 keep 0.5", _fresh(ResCNN, 0), example_inputs=X,
                    plan_out=path)
    mine = pruneql.apply(path, _fresh(ResCNN))
    assert mine.stem[0].out_channels == 8


runner = CliRunner(env={"COLUMNS": "200"})


def test_cli_plan_out_replays_onto_the_zoo_class(tmp_path):
    out, plan = tmp_path / "vgg.pt", tmp_path / "plan.json"
    result = runner.invoke(app, ["run", "vgg16", "-o", str(out), "--plan-out", str(plan)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "plan.json" in result.stdout
    scripted = torch.jit.load(str(out))
    mine = pruneql.apply(str(plan), zoo.build("vgg16_cifar"))
    mine.load_state_dict(scripted.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(mine.eval()(x), scripted(x), rtol=1e-5, atol=1e-6)


def test_cli_refuses_a_plan_path_that_is_the_output_or_exists(tmp_path):
    out = tmp_path / "o.pt"
    same = runner.invoke(app, ["run", "vgg16", "-o", str(out), "--plan-out", str(out)])
    assert same.exit_code == 1 and "same file" in same.output and not out.exists()
    plan = tmp_path / "plan.json"
    plan.write_text("mine")
    kept = runner.invoke(app, ["run", "vgg16", "-o", str(out), "--plan-out", str(plan)])
    assert kept.exit_code == 1 and "already exists" in kept.output
    assert plan.read_text() == "mine" and not out.exists()


def test_apply_loads_the_pruned_module_state_under_the_models_names():
    """``apply(plan, model, state_dict)``: the graph's keys (``conv2d.weight``) are renamed to
    the model's (``w``); weights of another plan are refused with a hint."""
    result = pruneql.compile("prune first, conv2d by l1 keep 0.5", _fresh(Functional, 0),
                             example_inputs=X)
    mine = pruneql.apply(result.plan, _fresh(Functional), result.module.state_dict())
    _same(result, mine.eval())
    other = pruneql.compile("prune first by l1 keep 0.25", _fresh(Functional, 0),
                            example_inputs=X)
    with pytest.raises(replay.ReplayError, match="do not fit the rebuilt model"):
        pruneql.apply(result.plan, _fresh(Functional), other.module.state_dict())
