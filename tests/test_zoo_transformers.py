"""Zoo transformers (vit_tiny, bert_tiny, llama_tiny): exact parameter counts, state_dict
layouts of timm / Hugging Face, fx-traceability, the two attention forms, causality, RoPE.

Parity with timm and transformers themselves is bench/zoo_parity.py (those libraries are not
test dependencies); here the layouts are checked against the documented key names.
"""
from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn.functional as F

from pruneql import zoo
from pruneql.zoo.llama import apply_rotary, repeat_kv, rotate_half

# small configurations for everything but the one full-size ViT check
VIT = dict(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=3, num_classes=7)
BERT = dict(vocab_size=100, hidden=32, num_layers=2, num_heads=4, intermediate=64,
            max_positions=16, num_labels=3)
LLAMA = dict(vocab_size=64, hidden=32, intermediate=48, num_layers=2, num_heads=4,
             num_kv_heads=2, max_positions=32)
SMALL = {"vit_tiny": VIT, "bert_tiny": BERT, "llama_tiny": LLAMA}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())    # shared parameters counted once


def linear(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def vit_params(img_size=224, patch_size=16, embed_dim=192, depth=12, num_heads=3,
               num_classes=1000, mlp_ratio=4) -> int:
    C, hidden = embed_dim, embed_dim * mlp_ratio
    tokens = 1 + (img_size // patch_size) ** 2
    block = 2 * 2 * C + linear(C, 3 * C) + linear(C, C) + linear(C, hidden) + linear(hidden, C)
    stem = 3 * patch_size ** 2 * C + C + C + tokens * C     # patch conv, cls token, pos_embed
    return stem + depth * block + 2 * C + linear(C, num_classes)


def bert_params(vocab_size=30522, hidden=128, num_layers=2, num_heads=2, intermediate=512,
                max_positions=512, num_labels=2) -> int:
    H = hidden
    embeddings = (vocab_size + max_positions + 2) * H + 2 * H
    layer = 4 * linear(H, H) + 2 * H + linear(H, intermediate) + linear(intermediate, H) + 2 * H
    return embeddings + num_layers * layer + linear(H, H) + linear(H, num_labels)


def llama_params(vocab_size=256, hidden=128, intermediate=384, num_layers=2, num_heads=4,
                 num_kv_heads=2, max_positions=256, tied=False) -> int:
    H, kv = hidden, num_kv_heads * hidden // num_heads
    attn = 2 * H * H + 2 * H * kv
    layer = attn + 3 * H * intermediate + 2 * H
    return vocab_size * H * (1 if tied else 2) + num_layers * layer + H


def run(model: torch.nn.Module, *args) -> torch.Tensor:
    with torch.no_grad():
        return model(*args)


def small(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    return zoo.build(name, seed=seed, **{**SMALL[name], **kwargs})


def small_input(name: str, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if name == "vit_tiny":
        return torch.randn(batch, 3, VIT["img_size"], VIT["img_size"], generator=g)
    vocab = SMALL[name]["vocab_size"]
    return torch.randint(0, vocab, (batch, 12), generator=g)


# --------------------------------------------------------------------------- sizes, layouts

def test_vit_tiny_full_size_params_shape_and_trace():
    m = zoo.build("vit_tiny")
    assert not m.training
    assert n_params(m) == vit_params() == 5_717_416        # timm vit_tiny_patch16_224
    x = zoo.example_input("vit_tiny")
    gm = torch.fx.symbolic_trace(m)
    out = run(m, x)
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    assert torch.equal(run(gm, x), out)


def test_default_parameter_counts():
    assert n_params(zoo.build("bert_tiny")) == bert_params() == 4_386_178
    assert n_params(zoo.build("llama_tiny")) == llama_params() == 459_392
    tied = zoo.build("llama_tiny", tie_word_embeddings=True)
    assert n_params(tied) == llama_params(tied=True) == 426_624


def test_small_config_parameter_counts():
    assert n_params(small("vit_tiny")) == vit_params(**VIT)
    assert n_params(small("bert_tiny")) == bert_params(**BERT)
    assert n_params(small("llama_tiny")) == llama_params(**LLAMA)


def test_vit_state_dict_keys_are_timms():
    block = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
             "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
             "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
    expected = (["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
                + [f"blocks.{i}.{k}" for i in range(2) for k in block]
                + ["norm.weight", "norm.bias", "head.weight", "head.bias"])
    sd = small("vit_tiny").state_dict()
    assert sorted(sd) == sorted(expected)
    assert sd["blocks.0.attn.qkv.weight"].shape == (3 * 24, 24)
    assert sd["pos_embed"].shape == (1, 1 + 16, 24)


def test_bert_state_dict_keys_are_hugging_faces():
    wb = ("weight", "bias")
    layer = ([f"attention.self.{p}.{w}" for p in ("query", "key", "value") for w in wb]
             + [f"attention.output.{p}.{w}" for p in ("dense", "LayerNorm") for w in wb]
             + [f"intermediate.dense.{w}" for w in wb]
             + [f"output.{p}.{w}" for p in ("dense", "LayerNorm") for w in wb])
    expected = ([f"bert.embeddings.{e}_embeddings.weight" for e in ("word", "position",
                                                                    "token_type")]
                + [f"bert.embeddings.LayerNorm.{w}" for w in wb]
                + [f"bert.encoder.layer.{i}.{k}" for i in range(2) for k in layer]
                + [f"bert.pooler.dense.{w}" for w in wb] + [f"classifier.{w}" for w in wb])
    sd = small("bert_tiny").state_dict()
    assert sorted(sd) == sorted(expected)
    assert not sd["bert.embeddings.word_embeddings.weight"][0].any()      # padding id 0


def test_llama_state_dict_keys_are_hugging_faces():
    layer = ([f"self_attn.{p}_proj.weight" for p in "qkvo"]
             + [f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
             + ["input_layernorm.weight", "post_attention_layernorm.weight"])
    expected = (["model.embed_tokens.weight"]
                + [f"model.layers.{i}.{k}" for i in range(2) for k in layer]
                + ["model.norm.weight", "lm_head.weight"])
    m = small("llama_tiny")
    sd = m.state_dict()
    assert sorted(sd) == sorted(expected)
    assert sd["model.layers.0.self_attn.k_proj.weight"].shape == (2 * 8, 32)     # 2 KV heads
    # inv_freq is a non-persistent buffer: present, but not in the state_dict
    assert "model.rotary_emb.inv_freq" in dict(m.named_buffers())


# --------------------------------------------------------------------------- registry

@pytest.mark.parametrize("name", ["vit_tiny", "bert_tiny", "llama_tiny"])
def test_registered_with_description_and_source(name):
    e = zoo.entry(name)
    assert e.description and e.paper and name in zoo.__all__


def test_example_input_tokens_and_fallback():
    ids = zoo.example_input("bert_tiny", batch=3, seed=4)
    assert ids.shape == (3, *zoo.entry("bert_tiny").input_shape) and ids.dtype == torch.int64
    assert torch.equal(ids, zoo.example_input("bert_tiny", batch=3, seed=4))
    assert not torch.equal(ids, zoo.example_input("bert_tiny", batch=3, seed=5))
    llama = zoo.example_input("llama_tiny", batch=2)
    assert 0 <= int(llama.min()) and int(llama.max()) < 256
    assert zoo.entry("vgg16_cifar").example is None
    image = zoo.example_input("vgg16_cifar", batch=2, seed=4)
    assert torch.equal(image, torch.randn(2, 3, 32, 32,
                                          generator=torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("name", ["bert_tiny", "llama_tiny"])
def test_builds_are_deterministic(name):
    a, b = small(name, seed=3).state_dict(), small(name, seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = small(name, seed=4).state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


# --------------------------------------------------------------------------- tracing, forms

@pytest.mark.parametrize("name", ["vit_tiny", "bert_tiny", "llama_tiny"])
@pytest.mark.parametrize("fused", [True, False])
def test_symbolic_trace_matches_eager(name, fused):
    m = small(name, fused_attn=fused)
    gm = torch.fx.symbolic_trace(m)
    x = small_input(name)
    assert torch.equal(run(gm, x), run(m, x))
    sdpa = any(n.target is F.scaled_dot_product_attention for n in gm.graph.nodes)
    assert sdpa == fused


def test_output_shapes():
    assert run(small("vit_tiny"), small_input("vit_tiny", batch=3)).shape == (3, 7)
    assert run(small("bert_tiny"), small_input("bert_tiny", batch=3)).shape == (3, 3)
    assert run(small("llama_tiny"), small_input("llama_tiny", batch=3)).shape == (3, 12, 64)


@pytest.mark.parametrize("name", ["vit_tiny", "bert_tiny", "llama_tiny"])
def test_sdpa_and_explicit_attention_agree(name):
    fused, explicit = small(name, fused_attn=True), small(name, fused_attn=False)
    explicit.load_state_dict(fused.state_dict())
    x = small_input(name)
    a, b = run(fused, x), run(explicit, x)
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()


# --------------------------------------------------------------------------- bert masks

@pytest.mark.parametrize("fused", [True, False])
def test_bert_mask_hides_padding(fused):
    m = small("bert_tiny", fused_attn=fused)
    ids = small_input("bert_tiny")
    ones = torch.ones_like(ids)
    assert torch.allclose(run(m.forward_masked, ids, ones), run(m, ids), atol=1e-6)
    mask = ones.clone()
    mask[:, 8:] = 0
    other = ids.clone()
    other[:, 8:] = (ids[:, 8:] + 1) % BERT["vocab_size"]     # change only the padding
    masked = run(m.forward_masked, ids, mask)
    assert torch.allclose(run(m.forward_masked, other, mask), masked, atol=1e-6)
    assert not torch.allclose(run(m, other), run(m, ids), atol=1e-6)


# --------------------------------------------------------------------------- llama specifics

def test_tied_lm_head_shares_storage():
    m = small("llama_tiny", tie_word_embeddings=True)
    assert m.lm_head.weight is m.model.embed_tokens.weight
    assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
    sd = m.state_dict()
    assert torch.equal(sd["lm_head.weight"], sd["model.embed_tokens.weight"])
    clone = small("llama_tiny", seed=9, tie_word_embeddings=True)
    clone.load_state_dict(sd, strict=True)
    assert clone.lm_head.weight is clone.model.embed_tokens.weight
    x = small_input("llama_tiny")
    assert torch.equal(run(clone, x), run(m, x))
    assert small("llama_tiny").lm_head.weight is not small("llama_tiny").model.embed_tokens.weight


@pytest.mark.parametrize("fused", [True, False])
def test_llama_is_causal(fused):
    m = small("llama_tiny", fused_attn=fused)
    ids = small_input("llama_tiny")
    t = 5
    changed = ids.clone()
    changed[:, t + 1] = (ids[:, t + 1] + 1) % LLAMA["vocab_size"]
    a, b = run(m, ids), run(m, changed)
    assert torch.allclose(a[:, :t + 1], b[:, :t + 1], atol=1e-6)
    assert not torch.allclose(a[:, t + 1], b[:, t + 1], atol=1e-4)


def test_rope_makes_llama_order_sensitive(monkeypatch):
    # One layer of causal attention without positions sees the prefix as a set: permuting the
    # tokens before the last one leaves the last logits unchanged. With RoPE they change.
    m = small("llama_tiny", num_layers=1)
    ids = small_input("llama_tiny")
    perm = torch.cat([torch.randperm(11, generator=torch.Generator().manual_seed(0)),
                      torch.tensor([11])])
    shuffled = ids[:, perm]
    assert not torch.allclose(run(m, ids)[:, -1], run(m, shuffled)[:, -1], atol=1e-4)
    rope = m.model.rotary_emb
    monkeypatch.setattr(rope, "forward", lambda x: (torch.ones(1, x.shape[1], 8),
                                                    torch.zeros(1, x.shape[1], 8)))
    assert torch.allclose(run(m, ids)[:, -1], run(m, shuffled)[:, -1], atol=1e-5)


def test_rotary_embedding_is_huggingfaces():
    rope = small("llama_tiny").model.rotary_emb
    head_dim = LLAMA["hidden"] // LLAMA["num_heads"]
    expected = 1.0 / 10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim)
    assert torch.equal(rope.inv_freq, expected)
    cos, sin = rope(torch.zeros(1, 3, 32))
    angles = torch.arange(3.0)[:, None] * expected
    assert torch.allclose(cos[0], torch.cat([angles, angles], -1).cos())
    assert torch.allclose(sin[0], torch.cat([angles, angles], -1).sin())
    assert rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist() == [-3.0, -4.0, 1.0, 2.0]


def test_rope_scores_depend_on_relative_position():
    rope = small("llama_tiny").model.rotary_emb
    cos, sin = rope(torch.zeros(1, 10, 32))
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)

    def score(m: int, n: int) -> torch.Tensor:
        qm = apply_rotary(q, cos[:, m:m + 1], sin[:, m:m + 1])
        kn = apply_rotary(k, cos[:, n:n + 1], sin[:, n:n + 1])
        return (qm * kn).sum()

    assert torch.allclose(score(2, 5), score(6, 9), atol=1e-5)
    assert not torch.allclose(score(2, 5), score(2, 6), atol=1e-3)


def test_repeat_kv_shares_each_kv_head_between_consecutive_query_heads():
    x = torch.arange(2 * 3 * 4.0).reshape(1, 2, 3, 4)
    y = repeat_kv(x, 2)
    assert y.shape == (1, 4, 3, 4)
    assert torch.equal(y[:, 0], x[:, 0]) and torch.equal(y[:, 1], x[:, 0])
    assert torch.equal(y[:, 2], x[:, 1]) and torch.equal(y[:, 3], x[:, 1])
    assert repeat_kv(x, 1) is x
