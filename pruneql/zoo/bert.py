"""BERT (Devlin et al. 2019) sequence classifier in Hugging Face's layout; BERT-Tiny size
(Turc et al. 2019: 2 layers, hidden 128, 2 heads, intermediate 512).

State_dict keys are those of ``transformers.BertForSequenceClassification``, so its
checkpoints load with ``strict=True``: ``bert.embeddings.{word_embeddings,
position_embeddings, token_type_embeddings, LayerNorm}``, ``bert.encoder.layer.N`` =
:class:`BertLayer` (``attention.self.{query,key,value}``, ``attention.output.{dense,
LayerNorm}``, ``intermediate.dense``, ``output.{dense, LayerNorm}``), ``bert.pooler.dense``
(tanh on the first token) and ``classifier``. LayerNorms use eps 1e-12, activations the exact
(erf) GELU. Positions 0..T-1 come from ``torch.arange`` (Hugging Face slices its
non-persistent ``position_ids`` buffer, which no state_dict holds; fx cannot slice a buffer
by a traced length).

The input is token ids (N, T) int64; token types are all zero. ``forward(input_ids)`` attends
to every token (an all-ones attention mask), so the model traces with one example input;
:meth:`BertForSequenceClassification.forward_masked` takes an (N, T) 0/1 attention mask
(padding). The mask is added to the scores as ``(1 - mask) * finfo.min``, like Hugging Face.
Attention splits heads with ``view(B, T, heads, head_dim).transpose(1, 2)`` and runs
``F.scaled_dot_product_attention`` (``fused_attn=True``, default) or the explicit softmax.
Dropout is omitted: it is the identity in eval mode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BertEmbeddings", "BertSelfAttention", "BertLayer", "BertModel",
           "BertForSequenceClassification", "bert_tiny"]

LN_EPS = 1e-12


class BertEmbeddings(nn.Module):
    """Word + position + token-type (all type 0) embeddings, then LayerNorm."""

    def __init__(self, vocab_size: int, hidden: int, max_positions: int,
                 type_vocab_size: int = 2, pad_token_id: int = 0) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=LN_EPS)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids)
        x = x + self.token_type_embeddings(torch.zeros_like(input_ids))
        return self.LayerNorm(x + self.position_embeddings(positions))


class BertSelfAttention(nn.Module):
    """Separate q/k/v projections; returns the merged heads (B, T, hidden)."""

    def __init__(self, hidden: int, num_heads: int, fused_attn: bool = True) -> None:
        super().__init__()
        if hidden % num_heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = hidden // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            scores = q @ k.transpose(-2, -1) * self.scale
            if mask is not None:
                scores = scores + mask
            out = scores.softmax(dim=-1) @ v
        return out.transpose(1, 2).reshape(B, T, C)


class BertAddNorm(nn.Module):
    """``LayerNorm(dense(h) + residual)``: HF's BertSelfOutput and BertOutput."""

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=LN_EPS)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden: int, num_heads: int, fused_attn: bool = True) -> None:
        super().__init__()
        self.self = BertSelfAttention(hidden, num_heads, fused_attn)
        self.output = BertAddNorm(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    """Post-norm encoder layer: attention + add&norm, GELU MLP + add&norm."""

    def __init__(self, hidden: int, num_heads: int, intermediate: int,
                 fused_attn: bool = True) -> None:
        super().__init__()
        self.attention = BertAttention(hidden, num_heads, fused_attn)
        self.intermediate = BertIntermediate(hidden, intermediate)
        self.output = BertAddNorm(intermediate, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, layers: list[BertLayer]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertPooler(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.activation = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(x[:, 0]))


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, T) 0/1 key mask -> (N, 1, 1, T) scores offset: 0 where kept, finfo.min where not."""
    keep = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - keep) * torch.finfo(dtype).min


class BertModel(nn.Module):
    """Embeddings, encoder, pooler; returns (sequence output, pooled output)."""

    def __init__(self, vocab_size: int, hidden: int, num_layers: int, num_heads: int,
                 intermediate: int, max_positions: int, fused_attn: bool = True) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(vocab_size, hidden, max_positions)
        self.encoder = BertEncoder([BertLayer(hidden, num_heads, intermediate, fused_attn)
                                    for _ in range(num_layers)])
        self.pooler = BertPooler(hidden)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embeddings(input_ids)
        mask = None if attention_mask is None else additive_mask(attention_mask, x.dtype)
        x = self.encoder(x, mask)
        return x, self.pooler(x)


class BertForSequenceClassification(nn.Module):
    """BERT encoder + linear classifier on the pooled first token."""

    def __init__(self, vocab_size: int = 30522, hidden: int = 128, num_layers: int = 2,
                 num_heads: int = 2, intermediate: int = 512, max_positions: int = 512,
                 num_labels: int = 2, fused_attn: bool = True) -> None:
        super().__init__()
        self.bert = BertModel(vocab_size, hidden, num_layers, num_heads, intermediate,
                              max_positions, fused_attn)
        self.classifier = nn.Linear(hidden, num_labels)
        self._init_weights()

    def _init_weights(self) -> None:
        # Hugging Face's BERT init: N(0, 0.02) weights, zero biases, zero padding embedding
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_labels) for token ids (N, T), attending to every token."""
        return self.classifier(self.bert(input_ids)[1])

    def forward_masked(self, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits for token ids (N, T) with an (N, T) 0/1 attention mask (0 = padding)."""
        return self.classifier(self.bert(input_ids, attention_mask)[1])


def bert_tiny(vocab_size: int = 30522, hidden: int = 128, num_layers: int = 2,
              num_heads: int = 2, intermediate: int = 512, max_positions: int = 512,
              num_labels: int = 2, fused_attn: bool = True) -> BertForSequenceClassification:
    """BERT-Tiny sequence classifier (4,386,178 parameters), Hugging Face's layout.

    Smaller configurations through the keyword arguments; ``fused_attn=False`` selects the
    explicit softmax form of attention.

    >>> m = bert_tiny(vocab_size=50, hidden=16, num_layers=1, intermediate=32,
    ...               max_positions=8).eval()
    >>> ids = torch.randint(0, 50, (3, 8))
    >>> m(ids).shape
    torch.Size([3, 2])
    >>> torch.allclose(m(ids), m.forward_masked(ids, torch.ones(3, 8)), atol=1e-6)
    True
    """
    return BertForSequenceClassification(vocab_size, hidden, num_layers, num_heads,
                                         intermediate, max_positions, num_labels, fused_attn)
