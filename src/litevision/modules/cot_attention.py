"""Contextual Transformer (CoT) block (Li et al., TPAMI 2022), seed 004 sections 8 and 15 (a repeat).

Keys are contextualised by a grouped k x k convolution (static context K1). Query and K1 are
concatenated and two 1x1 convolutions produce, at every position, a k x k local attention matrix per
weight group (GroupNorm-ed, C/8 groups shared across channels, channel c uses group c mod C/8 as in the
authors' aggregation kernel). The values (1x1 conv + BN) are aggregated over each position's k x k
neighbourhood with these weights (dynamic context K2, then BN + Swish), and K1 and K2 are fused by a
radix-2 split attention (global pooling -> MLP -> softmax over the two contexts), as in CoTNet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


@register_module("cot_attention", ModuleCard(
    paper="Contextual Transformer Networks for Visual Recognition", venue="TPAMI", year=2022,
    category="token_mixer", seed_section=8, paper_url="https://arxiv.org/abs/2107.12292",
    constraints="channels divisible by 8 (key conv groups=4, C/8 attention weight groups)",
    ref_params=26680, ref_macs=61822976,
    extra={"also_seed_sections": (15,)},
    deviations_fixed=(
        "local k x k aggregation of the values with per-position attention weights, as in the paper; the seed "
        "averages the k*k weights and applies one softmax over all H*W positions instead",
        "K1 and K2 fused by the paper's split attention (the seed simply adds them)",
        "BatchNorm removed from the fusion MLP: it acts on a pooled 1x1 descriptor and cannot train at batch 1",
    ),
))
class CoTAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 kernel_size: int = 3, share_planes: int = 8, factor: int = 2, radix: int = 2) -> None:
        super().__init__()
        check_shape_preserving("cot_attention", channels, out_channels, stride)
        if channels % share_planes or channels % 4:
            raise ValueError(f"cot_attention: channels ({channels}) must be divisible by 4 and by share_planes "
                             f"({share_planes})")
        self.out_channels, self.stride = channels, 1
        self.kernel_size, self.radix = kernel_size, radix
        self.weight_groups = channels // share_planes
        kk = kernel_size * kernel_size
        self.key_embed = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=4, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.embed = nn.Sequential(
            nn.Conv2d(2 * channels, channels // factor, 1, bias=False), nn.BatchNorm2d(channels // factor),
            nn.ReLU(inplace=True), nn.Conv2d(channels // factor, kk * self.weight_groups, 1),
            nn.GroupNorm(self.weight_groups, kk * self.weight_groups))
        self.value_embed = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.SiLU(inplace=True)
        attn_chs = max(channels * radix // 4, 32)
        self.fuse = nn.Sequential(
            nn.Conv2d(channels, attn_chs, 1), nn.ReLU(inplace=True), nn.Conv2d(attn_chs, radix * channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g, kk = self.weight_groups, self.kernel_size * self.kernel_size
        k1 = self.key_embed(x)  # static context
        weights = self.embed(torch.cat([x, k1], dim=1))  # query and static keys
        weights = weights.reshape(b, 1, g, kk, h, w)  # (N, 1, G, k*k, H, W): channel c uses group c mod G
        v = self.value_embed(x)
        cols = F.unfold(v, self.kernel_size, padding=self.kernel_size // 2)  # zero-padded k x k windows
        cols = cols.reshape(b, c // g, g, kk, h, w)  # channel c = i * G + g
        k2 = (cols * weights).sum(3).reshape(b, c, h, w)
        k2 = self.act(self.bn(k2))  # dynamic context
        gap = (k1 + k2).mean((2, 3), keepdim=True)
        attn = self.fuse(gap).reshape(b, c, self.radix).softmax(dim=2)  # split attention over {K2, K1}
        return k2 * attn[:, :, 0, None, None] + k1 * attn[:, :, 1, None, None]
