"""ViT-Ti/16 (Dosovitskiy et al. 2021; DeiT-Ti size, Touvron et al. 2021) in timm's layout.

State_dict keys are those of timm's ``vit_tiny_patch16_224``, so its checkpoints load with
``strict=True``: ``patch_embed.proj`` (Conv2d 3->192, 16x16, stride 16), ``cls_token``
(1, 1, C), ``pos_embed`` (1, 1 + grid**2, C, the class token's position included),
``blocks.N`` = :class:`Block` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``), ``norm`` and ``head``. LayerNorms use eps 1e-6, the MLP exact
(erf) GELU, and the head reads the class token (timm's ``global_pool='token'``).

Attention follows timm: one fused ``qkv`` Linear (with bias) reshaped to (3, B, heads, N,
head_dim) and unbound into q, k, v; then ``F.scaled_dot_product_attention`` when
``fused_attn`` (the default) or the explicit ``softmax(q @ k^T * scale) @ v``; heads merged
back with ``transpose(1, 2).reshape(B, N, C)`` before ``proj``. Dropout and stochastic depth
are omitted: they are the identity in eval mode. The input size is fixed by ``pos_embed``
(``img_size``), as in timm's default (no position-embedding resampling).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PatchEmbed", "Attention", "Mlp", "Block", "VisionTransformer", "vit_tiny"]


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens: (B, 3, H, W) -> (B, H/p * W/p, C)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int, fused_attn: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            x = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1) @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0,
                 fused_attn: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, fused_attn)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT classifier on the class token; see the module docstring for the layout."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 192, depth: int = 12, num_heads: int = 3,
                 mlp_ratio: float = 4.0, num_classes: int = 1000,
                 fused_attn: bool = True) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        num_patches = (img_size // patch_size) ** 2
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, embed_dim))
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio, fused_attn)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's default scheme: truncated-normal linears and position embedding, a
        # near-zero class token; the patch conv keeps PyTorch's default init
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.norm(self.blocks(x + self.pos_embed))
        return self.head(x[:, 0])


def vit_tiny(img_size: int = 224, patch_size: int = 16, embed_dim: int = 192, depth: int = 12,
             num_heads: int = 3, num_classes: int = 1000, fused_attn: bool = True,
             mlp_ratio: float = 4.0, in_chans: int = 3) -> VisionTransformer:
    """ViT-Ti/16 at 224x224 (5,717,416 parameters), timm's ``vit_tiny_patch16_224`` layout.

    The keyword arguments give smaller test configurations; ``fused_attn=False`` selects the
    explicit softmax form of attention instead of ``F.scaled_dot_product_attention``.

    >>> m = vit_tiny(img_size=32, patch_size=8, embed_dim=24, depth=1, num_classes=5).eval()
    >>> m(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 5])
    >>> tuple(m.pos_embed.shape), m.blocks[0].attn.qkv
    ((1, 17, 24), Linear(in_features=24, out_features=72, bias=True))
    """
    return VisionTransformer(img_size, patch_size, in_chans, embed_dim, depth, num_heads,
                             mlp_ratio, num_classes, fused_attn)
