"""Transformers: heads, head dims, MLP widths and the hidden width of the zoo's ViT, BERT
and Llama, each verified (exactly, or with the deviation reported under `allow inexact
layernorm`), emitted, reloaded in plain torch, and measured like torch's FLOP counter.

Small configurations of the zoo's real layouts keep this fast.
"""
from __future__ import annotations

import pytest
import torch

import pruneql
from pruneql import zoo
from pruneql.errors import PlanError
from tests.helpers import counted_macs

MODELS = {
    "vit": (zoo.vit.vit_tiny, dict(img_size=32, patch_size=8, depth=2)),
    "vit_explicit": (zoo.vit.vit_tiny, dict(img_size=32, patch_size=8, depth=2,
                                            fused_attn=False)),
    "bert": (zoo.bert.bert_tiny, {}),
    "bert_explicit": (zoo.bert.bert_tiny, dict(fused_attn=False)),
    "llama": (zoo.llama.llama_tiny, {}),
    "llama_explicit": (zoo.llama.llama_tiny, dict(fused_attn=False)),
    "llama_tied": (zoo.llama.llama_tiny, dict(tie_word_embeddings=True)),
}


def build(key):
    factory, kwargs = MODELS[key]
    torch.manual_seed(0)
    return factory(**kwargs).eval()


def example(key):
    if key.startswith("vit"):
        return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    name = "bert_tiny" if key.startswith("bert") else "llama_tiny"
    return zoo.example_input(name, batch=1, seed=0)


def compiled(key, recipe, tmp_path=None):
    """(model, example, result); the recipe may name tests' own data (trusted here)."""
    model, x = build(key), example(key)
    output = str(tmp_path / "m.pt2") if tmp_path is not None else None
    return model, x, pruneql.compile(recipe, model, example_inputs=x, output=output,
                                     trust_code=True)


def selected(report):
    return [g for g in report["groups"] if g["selected"]]


EXACT = [
    ("vit", "prune blocks.*.attn.qkv by l2 keep 0.5 heads", "heads", (3, 1)),
    ("vit_explicit", "prune blocks.*.attn.qkv by l2 keep 0.5 heads", "heads", (3, 1)),
    ("vit", "prune blocks.*.attn.qkv by l2 keep 0.5 head_dims", "head_dims", (64, 32)),
    ("vit", "prune blocks.*.mlp.fc1 by taylor keep 0.5; data python "
            "\"tests.test_transformers:vit_data\"", "channels", (768, 384)),
    ("bert", "prune query by l2 keep 0.5 heads", "heads", (2, 1)),
    ("bert_explicit", "prune query by l2 keep 0.5 heads", "heads", (2, 1)),
    ("bert", "prune query by l2 keep 0.5 head_dims", "head_dims", (64, 32)),
    ("bert", "prune **.intermediate.dense by l1 keep 0.5", "channels", (512, 256)),
    ("llama", "prune q_proj by l2 keep 0.75 heads", "heads", (2, 1)),
    ("llama_explicit", "prune q_proj by l2 keep 0.75 heads", "heads", (2, 1)),
    ("llama", "prune v_proj by l2 keep 0.5 head_dims", "head_dims", (32, 16)),
    ("llama", "prune gate_proj by l2 keep 0.5", "channels", (384, 192)),
    ("llama", "prune embed_tokens by l2 keep 0.75", "channels", (128, 96)),
    ("llama_tied", "prune embed_tokens by l2 keep 0.75", "channels", (128, 96)),
]


def vit_data():
    """A few random 32x32 images with labels, for the data-driven case above."""
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 1000, (16,), generator=torch.Generator().manual_seed(2))
    dataset = torch.utils.data.TensorDataset(x, y)
    return dataset, dataset


@pytest.mark.parametrize("key,recipe,unit,units", EXACT, ids=lambda v: str(v)[:40])
def test_pruned_exactly_emitted_and_measured(key, recipe, unit, units, tmp_path):
    model, x, result = compiled(key, recipe, tmp_path)
    report = result.report.to_dict()
    assert report["verify"]["passed"] and report["verify"]["max_rel_error"] <= 1e-5
    groups = selected(report)
    assert groups and all(g["unit"] == unit for g in groups)
    assert all((g["units"]["before"], g["units"]["after"]) == units for g in groups)
    assert report["after"]["flops"] < report["before"]["flops"]
    # torch's own counter agrees before and after, attention included
    assert report["before"]["flops"] == pytest.approx(counted_macs(model, x), rel=0.01)
    assert report["after"]["flops"] == pytest.approx(counted_macs(result.module, x), rel=0.01)
    # the written program is plain torch and runs at another batch size
    loaded = torch.export.load(result.written["path"]).module()
    wide = torch.cat([x, x, x])
    with torch.no_grad():
        torch.testing.assert_close(loaded(wide), result.module(wide))


def test_heads_literals_are_rewritten():
    _, x, result = compiled("vit", "prune blocks.*.attn.qkv by l2 keep 2 heads")
    reshapes = [n for n in result.module.graph.nodes if n.target == "reshape"]
    assert any(2 in n.args[1:] for n in reshapes)      # (B, N, 3, heads, head_dim)
    assert result.module.get_submodule("blocks.0.attn.qkv").out_features == 3 * 2 * 64


def test_head_dims_keep_the_softmax_scale():
    _, _, result = compiled("bert", "prune query by l2 keep 0.5 head_dims")
    sdpa = [n for n in result.module.graph.nodes
            if n.target is torch.nn.functional.scaled_dot_product_attention]
    assert sdpa and all(n.kwargs["scale"] == pytest.approx(64 ** -0.5) for n in sdpa)


def test_rope_freezes_head_dims_but_not_heads():
    report = pruneql.plan("prune q_proj by l2 keep 0.5 heads", build("llama"),
                          example_inputs=example("llama")).to_dict()
    assert all(g["units"]["after"] == 1 for g in selected(report))
    with pytest.raises(PlanError, match="rotary") as caught:
        pruneql.plan("prune q_proj by l2 keep 0.5 head_dims", build("llama"),
                     example_inputs=example("llama"))
    assert "cannot be pruned" in caught.value.message


def test_a_unit_that_does_not_fit_names_the_line():
    with pytest.raises(PlanError, match="unit 'heads' does not fit") as caught:
        pruneql.plan("model vit_tiny\nprune blocks.*.mlp.fc1 by l1 keep 0.5 heads",
                     build("vit"), example_inputs=example("vit"))
    assert caught.value.span.line == 2
    with pytest.raises(PlanError, match="unit 'channels' does not fit"):
        pruneql.plan("prune qkv by l1 keep 0.5", build("vit"), example_inputs=example("vit"))


def test_gqa_heads_go_with_their_key_value_head():
    report = compiled("llama", "prune q_proj by l2 keep 1 heads")[2].report.to_dict()
    group = selected(report)[0]
    assert set(group["producers"]) >= {"model.layers.0.self_attn.q_proj",
                                       "model.layers.0.self_attn.k_proj",
                                       "model.layers.0.self_attn.v_proj"}
    assert group["channels"] == {"before": 128, "after": 64}     # 4 → 2 query heads of 32


@pytest.mark.parametrize("key,recipe", [
    ("vit", "allow inexact layernorm; prune patch_embed.proj by l2 keep 0.75"),
    ("bert", "allow inexact layernorm; prune word_embeddings by l2 keep 0.75"),
])
def test_layernorm_hidden_width_needs_consent_and_reports_its_deviation(key, recipe):
    with pytest.raises(PlanError, match="LayerNorm over the channels"):
        pruneql.plan(recipe.split("; ", 1)[1], build(key), example_inputs=example(key))
    result = compiled(key, recipe)[2]
    verify = result.report.verify
    assert verify["passed"] is False and verify["exact"] is False
    assert verify["max_rel_error"] > 0 and verify["allowed"] == "inexact layernorm"


def test_llama_hidden_width_is_exact_and_tied_head_stays_tied():
    _, _, result = compiled("llama_tied", "prune embed_tokens by l2 keep 0.75")
    module = result.module
    assert module.get_parameter("lm_head.weight") is \
        module.get_parameter("model.embed_tokens.weight")
    assert module.get_parameter("model.norm.weight").shape == (96,)


# ---- Hugging Face's Conv1D: a linear layer that stores its weight as (in, out) -------------

class Conv1D(torch.nn.Module):
    """GPT-2's layer: ``addmm(b, x.view(-1, in), w)`` with ``w`` (in, out)."""

    def __init__(self, n_out, n_in):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_in, n_out) * 0.2)
        self.bias = torch.nn.Parameter(torch.randn(n_out) * 0.1)

    def forward(self, x):
        rows = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return rows.view(x.size()[:-1] + (self.weight.size(-1),))


class GPT2ishMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(50, 16)
        self.c_fc, self.c_proj = Conv1D(64, 16), Conv1D(16, 64)
        self.head = torch.nn.Linear(16, 50)

    def forward(self, tokens):
        h = self.wte(tokens)
        h = h + self.c_proj(torch.nn.functional.gelu(self.c_fc(h)))
        return self.head(h)


@pytest.mark.parametrize("frontend", ["symbolic", "export"])
def test_conv1d_layers_prune_verify_and_count_every_token(frontend):
    torch.manual_seed(0)
    model = GPT2ishMLP().eval()
    tokens = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = pruneql.compile(f"trace {frontend}; prune c_fc by l1 keep 0.5", model,
                             example_inputs=tokens)
    report = result.report.to_dict()
    assert report["verify"]["passed"] and report["frontend"] == frontend
    fc = next(layer for layer in report["layers"] if layer["name"] == "c_fc")
    assert fc["out_channels"] == [64, 32] and fc["kind"] == "linear"
    # FLOPs count every token of the folded (tokens, features) rows, as torch's counter does
    assert report["before"]["flops"] == counted_macs(model, tokens) == 12 * (16 * 64 * 2 + 16 * 50)
    assert report["after"]["flops"] == counted_macs(result.module, tokens)
    x = torch.randint(0, 50, (3, 12))
    torch.testing.assert_close(result.module(x), model(x), rtol=0.5, atol=10.0)  # runs, shape
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the user's Conv1D keeps its (in, out) layout: the plan cannot replay onto it
    assert any("(in, out)" in b["why"] for b in result.plan["blockers"])
    with pytest.raises(pruneql.PruneQLError, match="do not fit the model's own class"):
        result.state_dict()


class SplitQKV(torch.nn.Module):
    """GPT-2's attention layout: one fused projection split into q, k, v by size."""

    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.heads, self.dim, self.wte = heads, dim, torch.nn.Embedding(20, dim)
        self.c_attn, self.c_proj = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)

    def forward(self, tokens):
        x = self.wte(tokens)
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.dim, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.c_proj(out.transpose(1, 2).reshape(B, T, -1))


@pytest.mark.parametrize("unit", ["heads", "head_dims"])
def test_a_projection_split_by_size_prunes_heads_and_head_dims(unit):
    torch.manual_seed(0)
    model = SplitQKV().eval()
    x = torch.randint(0, 20, (1, 5), generator=torch.Generator().manual_seed(1))
    result = pruneql.compile(f"prune c_attn by l2 keep 0.5 {unit}", model, example_inputs=x)
    report = result.report.to_dict()
    assert report["verify"]["passed"]
    group = next(g for g in report["groups"] if g["producers"] == ["c_attn"])
    assert group["unit"] == unit and group["units"] == {"before": 8 if unit == "head_dims"
                                                        else 4, "after": 4 if unit ==
                                                        "head_dims" else 2}
    v = result.module.c_proj.in_features          # value features per head x heads
    qk = (result.module.c_attn.out_features - v) // 2
    if unit == "heads":                           # 2 whole heads of 4 dims: q, k, v alike
        assert qk == v == 8
    else:                                         # 4 dims kept: q/k dims and v dims, per head
        assert qk % 4 == v % 4 == 0 and qk // 4 + v // 4 == 4
    tokens = torch.randint(0, 20, (3, 5))
    assert result.module(tokens).shape == model(tokens).shape
