"""UFO attention (Song, UFO-ViT, arXiv 2109.14382), seed 004 section 26.

Softmax-free linear attention: Q, K, V per head; the (head_dim x head_dim) product K^T V is formed
first (cost linear in the token count), and XNorm replaces the softmax:

    XNorm(a) = gamma * a / ||a||_2   (L2 norm over the head channels, gamma learnable per head)
    out = XNorm(Q) @ XNorm(K^T V)

Q is normalised per token over its channels. For K^T V the paper's text does not pin the axis down;
by default each column (one "cluster centre" in query space) is normalised, so every output entry is
gamma^2 times a cosine similarity between a query and a centre (the paper's clustering / "unit force"
reading). ``kv_norm="row"`` normalises the rows instead, as the seed and the External-Attention code do.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._adapters import adapt
from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving, resolve_heads


def xnorm(x: Tensor, gamma: Tensor, dim: int, eps: float = 1e-6) -> Tensor:
    return x * gamma / x.norm(p=2, dim=dim, keepdim=True).clamp_min(eps)


class UFOAttention(nn.Module):
    """Tokens (N, L, C) -> (N, L, C)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_drop: float = 0.0,
                 kv_norm: str = "column") -> None:
        super().__init__()
        if kv_norm not in ("column", "row"):
            raise ValueError(f"ufo_attention: kv_norm must be 'column' or 'row', got {kv_norm!r}")
        self.kv_norm_dim = -2 if kv_norm == "column" else -1
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.gamma_q = nn.Parameter(torch.ones(1, num_heads, 1, 1))
        self.gamma_kv = nn.Parameter(torch.ones(1, num_heads, 1, 1))
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        n, length, c = x.shape
        # (N, L, 3C) -> (3, N, heads, L, head_dim)
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        kv = k.transpose(-2, -1) @ v  # (N, heads, d_k, d_v): linear in L
        out = xnorm(q, self.gamma_q, dim=-1) @ xnorm(kv, self.gamma_kv, dim=self.kv_norm_dim)  # (N, heads, L, d_v)
        out = out.transpose(1, 2).reshape(n, length, c)
        return self.proj_drop(self.proj(out))


@register_module("ufo_attention", ModuleCard(
    paper="UFO-ViT: High Performance Linear Vision Transformer without Softmax", venue="arXiv", year=2021,
    category="token_mixer", seed_section=26, paper_url="https://arxiv.org/abs/2109.14382",
    constraints="channels divisible by num_heads (default C // 32 heads)", adapter="token",
    deviations_fixed=(
        "seed projected every head to the full model width (h * d_model channels); heads here split C as "
        "in the paper's multi-head self-attention",
        "seed initialised gamma with randn (possibly negative, shared by Q and KV); here one positive "
        "learnable gamma per head for each XNorm, initialised to 1",
        "seed's unused dropout and std=0.001 Linear init dropped",
    ),
    notes="K^T V is normalised per column by default (XN(Q) XN(K^T V) = gamma^2 cosine similarity to the "
          "centres); kv_norm='row' is the seed's axis, the paper text is ambiguous. Norms are clamped at 1e-6 "
          "so an all-zero token cannot produce NaN",
    ref_params=16644, ref_macs=64225280,
))
def ufo_attention(channels: int, *, out_channels: int | None = None, stride: int = 1,
                  num_heads: int | None = None, qkv_bias: bool = True, proj_drop: float = 0.0,
                  kv_norm: str = "column") -> nn.Module:
    check_shape_preserving("ufo_attention", channels, out_channels, stride)
    heads = resolve_heads("ufo_attention", channels, num_heads)
    return adapt("token", UFOAttention(channels, heads, qkv_bias, proj_drop, kv_norm), channels)
