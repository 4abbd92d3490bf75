"""Sea attention: squeeze-enhanced axial attention of SeaFormer (Wan et al., ICLR 2023), seed 004 section 14.

q, k, v are 1x1 conv + BN projections. Squeeze axial attention: q, k, v are averaged over W (giving
H-long sequences) and over H (W-long sequences); q and k get a learned positional embedding along their
axis (16 positions, linearly interpolated to the sequence length); multi-head attention runs along each
axis, each output is projected (ReLU, 1x1 conv + BN) and the two are broadcast-added to v (residual),
then projected to C. Detail enhancement: the concatenated q, k, v pass a depthwise 3x3 conv + BN + ReLU
and a 1x1 conv + BN to C. Output = sigmoid(squeeze-axial output) * detail branch.

Plain PyTorch (the seed needs mmcv for a BatchNorm builder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


def conv_bn(in_chs: int, out_chs: int, kernel_size: int = 1, groups: int = 1, bn_weight_init: float = 1.0
            ) -> nn.Sequential:
    bn = nn.BatchNorm2d(out_chs)
    nn.init.constant_(bn.weight, bn_weight_init)
    nn.init.zeros_(bn.bias)
    conv = nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, groups=groups, bias=False)
    return nn.Sequential(conv, bn)


class SqueezeAxialPositionalEmbedding(nn.Module):
    """Learned (C, L0) embedding, linearly resized to the sequence length and added: (N, C, L) -> (N, C, L)."""

    def __init__(self, channels: int, length: int = 16) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, channels, length))

    def forward(self, x: Tensor) -> Tensor:
        pos = F.interpolate(self.pos_embed.to(x.dtype), size=x.shape[-1], mode="linear", align_corners=False)
        return x + pos


@register_module("sea_attention", ModuleCard(
    paper="SeaFormer: Squeeze-enhanced Axial Transformer for Mobile Semantic Segmentation", venue="ICLR",
    year=2023, category="token_mixer", seed_section=14, paper_url="https://arxiv.org/abs/2301.13156",
    constraints="key_dim * num_heads query/key width; any H x W", ref_params=81920, ref_macs=138715136,
    deviations_fixed=(
        "no mmcv: BatchNorm2d directly",
        "separate positional embeddings for row/column queries and keys are actually used (the seed calls "
        "undefined self.pos_emb_row / pos_emb_column and does not run)",
    ),
))
class SeaAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1, key_dim: int = 16,
                 num_heads: int = 4, attn_ratio: float = 2.0, pos_length: int = 16) -> None:
        super().__init__()
        check_shape_preserving("sea_attention", channels, out_channels, stride)
        self.out_channels, self.stride = channels, 1
        self.num_heads, self.key_dim = num_heads, key_dim
        self.scale = key_dim ** -0.5
        nh_kd = key_dim * num_heads
        self.value_dim = int(attn_ratio * key_dim) * num_heads
        dh = self.value_dim
        self.to_q, self.to_k, self.to_v = conv_bn(channels, nh_kd), conv_bn(channels, nh_kd), conv_bn(channels, dh)
        self.proj = nn.Sequential(nn.ReLU(), conv_bn(dh, channels, bn_weight_init=0.0))
        self.proj_encode_row = nn.Sequential(nn.ReLU(), conv_bn(dh, dh, bn_weight_init=0.0))
        self.proj_encode_column = nn.Sequential(nn.ReLU(), conv_bn(dh, dh, bn_weight_init=0.0))
        self.pos_emb_rowq = SqueezeAxialPositionalEmbedding(nh_kd, pos_length)
        self.pos_emb_rowk = SqueezeAxialPositionalEmbedding(nh_kd, pos_length)
        self.pos_emb_columnq = SqueezeAxialPositionalEmbedding(nh_kd, pos_length)
        self.pos_emb_columnk = SqueezeAxialPositionalEmbedding(nh_kd, pos_length)
        qkv_chs = 2 * nh_kd + dh
        self.dwconv = conv_bn(qkv_chs, qkv_chs, 3, groups=qkv_chs)
        self.act = nn.ReLU()
        self.pwconv = conv_bn(qkv_chs, channels)

    def _axial(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention along sequences: q, k (N, heads*key_dim, L), v (N, value_dim, L) -> (N, value_dim, L)."""
        b, _, length = q.shape
        heads = self.num_heads
        q = q.reshape(b, heads, -1, length).transpose(2, 3)  # (N, heads, L, key_dim)
        k = k.reshape(b, heads, -1, length)  # (N, heads, key_dim, L)
        v = v.reshape(b, heads, -1, length).transpose(2, 3)  # (N, heads, L, value_dim / heads)
        attn = ((q @ k) * self.scale).softmax(dim=-1)
        return (attn @ v).transpose(2, 3).reshape(b, self.value_dim, length)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        detail = self.pwconv(self.act(self.dwconv(torch.cat([q, k, v], dim=1))))  # detail enhancement
        row = self._axial(self.pos_emb_rowq(q.mean(3)), self.pos_emb_rowk(k.mean(3)), v.mean(3))  # along H
        row = self.proj_encode_row(row.reshape(b, self.value_dim, h, 1))
        col = self._axial(self.pos_emb_columnq(q.mean(2)), self.pos_emb_columnk(k.mean(2)), v.mean(2))  # along W
        col = self.proj_encode_column(col.reshape(b, self.value_dim, 1, w))
        out = self.proj(v + row + col)  # (N, dh, H, 1) + (N, dh, 1, W) broadcast, residual on v
        return torch.sigmoid(out) * detail
