"""Efficient additive attention of SwiftFormer (Shaker et al., ICCV 2023), seed 004 section 20.

Queries and keys are l2-normalised projections of the tokens; a learned vector w_g scores each query,
the scores (scaled by d^-1/2) are normalised over the tokens, and their weighted sum of queries is one
global query vector. Each key is multiplied by it element-wise (no N x N matrix), projected, added to
the queries, and projected again: linear in the number of tokens. Token adapter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._adapters import TokenAdapter
from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


class EfficientAdditiveAttention(nn.Module):
    """Tokens (B, L, C) -> (B, L, C); ``token_dim`` is the query/key width (SwiftFormer uses C)."""

    def __init__(self, channels: int, token_dim: int | None = None) -> None:
        super().__init__()
        token_dim = token_dim or channels
        self.to_query = nn.Linear(channels, token_dim)
        self.to_key = nn.Linear(channels, token_dim)
        self.w_g = nn.Parameter(torch.randn(token_dim, 1))
        self.scale = token_dim ** -0.5
        self.proj = nn.Linear(token_dim, token_dim)
        self.final = nn.Linear(token_dim, channels)

    def forward(self, x: Tensor) -> Tensor:
        query = F.normalize(self.to_query(x), dim=-1)
        key = F.normalize(self.to_key(x), dim=-1)
        scores = F.normalize((query @ self.w_g) * self.scale, dim=1)  # (B, L, 1), normalised over tokens
        global_query = (scores * query).sum(dim=1, keepdim=True)  # (B, 1, D)
        return self.final(self.proj(global_query * key) + query)


@register_module("swiftformer_attention", ModuleCard(
    paper="SwiftFormer: Efficient Additive Attention for Transformer-based Real-time Mobile Vision "
          "Applications", venue="ICCV", year=2023, category="token_mixer", seed_section=20,
    paper_url="https://arxiv.org/abs/2303.15446", adapter="token", ref_params=16704, ref_macs=51580928,
    deviations_fixed=("learned vector named w_g as in the paper (w_a in the seed); output projection maps "
                      "token_dim back to the input width so token_dim != C works",),
))
def swiftformer_attention(channels: int, *, out_channels: int | None = None, stride: int = 1,
                          token_dim: int | None = None) -> nn.Module:
    check_shape_preserving("swiftformer_attention", channels, out_channels, stride)
    return TokenAdapter(EfficientAdditiveAttention(channels, token_dim), channels)
