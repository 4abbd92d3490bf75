"""Multi-scale dilated attention (MSDA) of DilateFormer (Jiao et al., IEEE TMM 2023), seed 004 section 11.

q, k, v come from one 1x1 convolution. The heads are split into groups, one per dilation rate r; each
query attends to the k x k keys around it sampled with dilation r (sliding-window "dilated attention",
zero padding at the borders as in the authors' code). The groups' outputs are concatenated and
projected. Defaults are the paper's: k = 3, r = (1, 2, 3). When the number of heads is not a multiple
of the number of rates, the first groups get one head more.

Native NCHW (the seed's module takes (B, H, W, C) and permutes to NCHW for its convolution anyway; the
final Linear projection is the same operator as a 1x1 convolution).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


def dilate_attention(q: Tensor, k: Tensor, v: Tensor, head_dim: int, kernel_size: int, dilation: int) -> Tensor:
    """Each query attends to its k x k dilated neighbourhood: (B, D, H, W) x3 -> (B, D, H, W)."""
    b, d, h, w = q.shape
    heads, kk = d // head_dim, kernel_size * kernel_size
    pad = dilation * (kernel_size - 1) // 2

    def windows(t: Tensor) -> Tensor:  # (B, D, H, W) -> (B, heads, HW, k*k, head_dim)
        cols = F.unfold(t, kernel_size, dilation=dilation, padding=pad)
        return cols.reshape(b, heads, head_dim, kk, h * w).permute(0, 1, 4, 3, 2)

    q = q.reshape(b, heads, head_dim, 1, h * w).permute(0, 1, 4, 3, 2)  # (B, heads, HW, 1, head_dim)
    attn = (q @ windows(k).transpose(-1, -2)) * head_dim ** -0.5  # (B, heads, HW, 1, k*k)
    out = attn.softmax(dim=-1) @ windows(v)  # (B, heads, HW, 1, head_dim)
    return out.squeeze(3).permute(0, 1, 3, 2).reshape(b, d, h, w)


@register_module("dilateformer_attention", ModuleCard(
    paper="DilateFormer: Multi-Scale Dilated Transformer for Visual Recognition", venue="IEEE TMM", year=2023,
    category="token_mixer", seed_section=11, paper_url="https://arxiv.org/abs/2302.01791",
    constraints="channels divisible by num_heads (8); num_heads >= number of dilation rates",
    ref_params=16448, ref_macs=54992896,
    deviations_fixed=(
        "never writes into its input: the seed assigns each scale's output into x[i], a view of the input",
        "paper's dilation rates (1, 2, 3) by default (the seed uses [1, 3])",
        "head groups may be uneven, so any head count >= number of rates works (the seed asserts divisibility)",
    ),
))
class MultiDilateLocalAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1, num_heads: int = 8,
                 kernel_size: int = 3, dilation: Sequence[int] = (1, 2, 3), qkv_bias: bool = False) -> None:
        super().__init__()
        check_shape_preserving("dilateformer_attention", channels, out_channels, stride)
        dilation = tuple(dilation)
        if channels % num_heads or num_heads < len(dilation):
            raise ValueError(f"dilateformer_attention: channels ({channels}) must be divisible by num_heads "
                             f"({num_heads}) and num_heads >= len(dilation) ({len(dilation)})")
        self.out_channels, self.stride = channels, 1
        self.kernel_size, self.dilation = kernel_size, dilation
        self.head_dim = channels // num_heads
        base, extra = divmod(num_heads, len(dilation))
        self.group_channels = tuple((base + (i < extra)) * self.head_dim for i in range(len(dilation)))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        groups = zip(q.split(self.group_channels, 1), k.split(self.group_channels, 1),
                     v.split(self.group_channels, 1), self.dilation)
        out = [dilate_attention(qg, kg, vg, self.head_dim, self.kernel_size, r) for qg, kg, vg, r in groups]
        return self.proj(torch.cat(out, dim=1))
