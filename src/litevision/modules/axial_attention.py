"""Axial attention as a plug-in block (Ho et al., "Axial Attention in Multidimensional Transformers",
2019), seed 004 section 7.

Multi-head self-attention along one axis at a time: every row attends within itself (length W) and
every column within itself (length H), so one block costs O(HW(H + W)) instead of O(H^2 W^2). As in
the paper's layers (and the "sum_axial_out" form of the seed's AxialAttention), the two axial outputs
are summed; the block is pre-norm and residual: y = x + Attn_H(LN(x)) + Attn_W(LN(x)). Each axis has
its own q / kv / output projections. This is the single layer, not the seed's 12-layer reversible
AxialImageTransformer.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._adapters import ChannelsLastAdapter
from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


class AxisAttention(nn.Module):
    """Multi-head attention over sequences (B', L, C) -> (B', L, C)."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_kv = nn.Linear(channels, 2 * channels, bias=False)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        b, length, c = x.shape
        heads = self.num_heads
        q = self.to_q(x).reshape(b, length, heads, c // heads).transpose(1, 2)
        k, v = self.to_kv(x).reshape(b, length, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B', heads, L, d)
        return self.to_out(out.transpose(1, 2).reshape(b, length, c))


class AxialBlock(nn.Module):
    """Channels-last (N, H, W, C): x + row attention + column attention of LN(x)."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.attn_h = AxisAttention(channels, num_heads)  # along H (columns)
        self.attn_w = AxisAttention(channels, num_heads)  # along W (rows)

    def forward(self, x: Tensor) -> Tensor:
        n, h, w, c = x.shape
        y = self.norm(x)
        rows = self.attn_w(y.reshape(n * h, w, c)).reshape(n, h, w, c)
        cols = self.attn_h(y.transpose(1, 2).reshape(n * w, h, c)).reshape(n, w, h, c).transpose(1, 2)
        return x + rows + cols


@register_module("axial_attention", ModuleCard(
    paper="Axial Attention in Multidimensional Transformers", venue="arXiv", year=2019, category="token_mixer",
    seed_section=7, paper_url="https://arxiv.org/abs/1912.12180", adapter="channels_last",
    constraints="channels divisible by num_heads (8)", ref_params=33024, ref_macs=147718144,
    deviations_fixed=(
        "one residual axial-attention block instead of the seed's 12-layer reversible AxialImageTransformer",
        "no absolute axial positional embedding: it fixes the input size; the host network's convolutions give "
        "position, so the block works at any H x W",
    ),
))
def axial_attention(channels: int, *, out_channels: int | None = None, stride: int = 1,
                    num_heads: int = 8) -> nn.Module:
    check_shape_preserving("axial_attention", channels, out_channels, stride)
    if channels % num_heads:
        raise ValueError(f"axial_attention: channels ({channels}) must be divisible by num_heads ({num_heads})")
    return ChannelsLastAdapter(AxialBlock(channels, num_heads), channels)
