"""A small Llama (Touvron et al. 2023) causal language model in Hugging Face's layout.

State_dict keys are those of ``transformers.LlamaForCausalLM``, so its checkpoints load with
``strict=True``: ``model.embed_tokens``, ``model.layers.N`` = :class:`LlamaDecoderLayer`
(``self_attn.{q_proj,k_proj,v_proj,o_proj}`` without bias, ``mlp.{gate_proj,up_proj,
down_proj}`` without bias, ``input_layernorm``, ``post_attention_layernorm``), ``model.norm``
and ``lm_head``. With ``tie_word_embeddings=True`` ``lm_head.weight`` *is*
``model.embed_tokens.weight`` (one Parameter, listed under both keys of the state_dict).

- RMSNorm: ``weight * x / sqrt(mean(x^2) + eps)``, eps 1e-6, computed in float32.
- RoPE as Hugging Face: ``inv_freq = 1 / theta^(2i / head_dim)`` (theta 10000) is a
  non-persistent buffer of ``model.rotary_emb``; angles ``pos * inv_freq`` duplicated to
  head_dim, ``x * cos + rotate_half(x) * sin`` on q and k, where ``rotate_half`` maps the
  halves (a, b) to (-b, a).
- Grouped-query attention: ``num_kv_heads`` key/value heads, each shared by
  ``num_heads // num_kv_heads`` query heads (``repeat_kv``); causal, by
  ``F.scaled_dot_product_attention(is_causal=True)`` (``fused_attn=True``, default) or the
  explicit softmax with future positions masked.
- SwiGLU MLP: ``down_proj(silu(gate_proj(x)) * up_proj(x))``.

The input is token ids (N, T) int64 (T <= ``max_positions``, the context length the model is
meant for; RoPE itself has no table); the output is logits (N, T, vocab).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LlamaRMSNorm", "LlamaRotaryEmbedding", "LlamaAttention", "LlamaMLP",
           "LlamaDecoderLayer", "LlamaModel", "LlamaForCausalLM", "llama_tiny",
           "rotate_half", "repeat_kv"]


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(dtype)


class LlamaRotaryEmbedding(nn.Module):
    """cos and sin of the rotary angles for positions 0..T-1, each (1, T, head_dim)."""

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(x.shape[1], device=x.device, dtype=torch.float)
        angles = positions[None, :, None] * self.inv_freq
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(a, b) -> (-b, a) over the halves of the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, heads, T, head_dim) ``x`` by the (1, T, head_dim) angles."""
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, kv_heads, T, D) -> (B, kv_heads * n_rep, T, D), each head repeated n_rep times."""
    if n_rep == 1:
        return x
    B, H, T, D = x.shape
    return x[:, :, None].expand(B, H, n_rep, T, D).reshape(B, H * n_rep, T, D)


class LlamaAttention(nn.Module):
    def __init__(self, hidden: int, num_heads: int, num_kv_heads: int,
                 fused_attn: bool = True) -> None:
        super().__init__()
        if hidden % num_heads or num_heads % num_kv_heads:
            raise ValueError(f"need hidden ({hidden}) divisible by num_heads ({num_heads}) and "
                             f"num_heads divisible by num_kv_heads ({num_kv_heads})")
        self.head_dim = hidden // num_heads
        self.num_kv_groups = num_heads // num_kv_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn
        self.q_proj = nn.Linear(hidden, num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * self.head_dim, hidden, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, -1, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = apply_rotary(self._heads(self.q_proj(x)), cos, sin)
        k = apply_rotary(self._heads(self.k_proj(x)), cos, sin)
        k = repeat_kv(k, self.num_kv_groups)
        v = repeat_kv(self._heads(self.v_proj(x)), self.num_kv_groups)
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = q @ k.transpose(-2, -1) * self.scale
            future = torch.ones_like(scores, dtype=torch.bool).triu(1)
            out = scores.masked_fill(future, float("-inf")).softmax(dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class LlamaMLP(nn.Module):
    """SwiGLU: ``down_proj(silu(gate_proj(x)) * up_proj(x))``."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    """Pre-norm: x + attn(rmsnorm(x)), then x + mlp(rmsnorm(x))."""

    def __init__(self, hidden: int, intermediate: int, num_heads: int, num_kv_heads: int,
                 eps: float = 1e-6, fused_attn: bool = True) -> None:
        super().__init__()
        self.self_attn = LlamaAttention(hidden, num_heads, num_kv_heads, fused_attn)
        self.mlp = LlamaMLP(hidden, intermediate)
        self.input_layernorm = LlamaRMSNorm(hidden, eps)
        self.post_attention_layernorm = LlamaRMSNorm(hidden, eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    """Token embedding, decoder layers, final RMSNorm: (N, T) ids -> (N, T, hidden)."""

    def __init__(self, vocab_size: int, hidden: int, intermediate: int, num_layers: int,
                 num_heads: int, num_kv_heads: int, eps: float = 1e-6,
                 rope_theta: float = 10000.0, fused_attn: bool = True) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, hidden)
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(hidden, intermediate, num_heads, num_kv_heads, eps, fused_attn)
            for _ in range(num_layers))
        self.norm = LlamaRMSNorm(hidden, eps)
        self.rotary_emb = LlamaRotaryEmbedding(hidden // num_heads, rope_theta)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary_emb(x)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    """:class:`LlamaModel` + ``lm_head``; returns logits (N, T, vocab)."""

    def __init__(self, vocab_size: int = 256, hidden: int = 128, intermediate: int = 384,
                 num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
                 max_positions: int = 256, rms_norm_eps: float = 1e-6,
                 rope_theta: float = 10000.0, tie_word_embeddings: bool = False,
                 fused_attn: bool = True) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.model = LlamaModel(vocab_size, hidden, intermediate, num_layers, num_heads,
                                num_kv_heads, rms_norm_eps, rope_theta, fused_attn)
        self.lm_head = nn.Linear(hidden, vocab_size, bias=False)
        self._init_weights()
        if tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def _init_weights(self) -> None:
        # Hugging Face's Llama init: N(0, 0.02) linears and embedding; RMSNorm weights 1
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.model(input_ids))


def llama_tiny(vocab_size: int = 256, hidden: int = 128, intermediate: int = 384,
               num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
               max_positions: int = 256, rms_norm_eps: float = 1e-6,
               rope_theta: float = 10000.0, tie_word_embeddings: bool = False,
               fused_attn: bool = True) -> LlamaForCausalLM:
    """Byte-level Llama: vocab 256, hidden 128, 2 layers, 4 heads / 2 KV heads of 32 dims,
    SwiGLU 384 (459,392 parameters; 426,624 with ``tie_word_embeddings=True``).

    ``fused_attn=False`` selects the explicit softmax form of causal attention.

    >>> m = llama_tiny(hidden=32, intermediate=48, num_layers=1, tie_word_embeddings=True)
    >>> m.eval()(torch.randint(0, 256, (2, 5))).shape
    torch.Size([2, 5, 256])
    >>> m.lm_head.weight is m.model.embed_tokens.weight
    True
    """
    return LlamaForCausalLM(vocab_size, hidden, intermediate, num_layers, num_heads,
                            num_kv_heads, max_positions, rms_norm_eps, rope_theta,
                            tie_word_embeddings, fused_attn)
