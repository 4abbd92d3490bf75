"""Split-Attention convolution of ResNeSt (Zhang et al., CVPRW 2022, arXiv 2004.08955), seed 004 section 29.

A k x k grouped convolution produces ``radix`` splits per cardinal group (+BN+ReLU). The splits are
summed, globally pooled, passed through FC (+BN+ReLU) -> FC, and a softmax over the radix axis (sigmoid
when radix = 1) weights the splits, which are summed back to ``out_channels``.
"""

from __future__ import annotations

from torch import Tensor, nn

from litevision.layers.helpers import make_divisible
from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import PooledBatchNorm


@register_module("split_attention", ModuleCard(
    paper="ResNeSt: Split-Attention Networks", venue="CVPR Workshops", year=2022, category="conv",
    seed_section=29, paper_url="https://arxiv.org/abs/2004.08955",
    constraints="groups (cardinality, default 1) must divide channels and out_channels",
    deviations_fixed=(
        "seed (timm SplitAttn with norm_layer=None) had no BatchNorm; the paper's split-attention block "
        "has BN after the grouped conv and after the first FC",
    ),
    notes="supports out_channels and stride (the grouped conv is strided, as ResNeSt's 'avd' off); the "
          "FC BatchNorm returns its bias at batch 1 in training instead of raising",
    ref_params=43488, ref_macs=115611648,
))
class SplitAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 kernel_size: int = 3, radix: int = 2, groups: int = 1, rd_ratio: float = 0.25,
                 rd_divisor: int = 8) -> None:
        super().__init__()
        out_channels = out_channels or channels
        if channels % groups or out_channels % groups:
            raise ValueError(f"split_attention: groups ({groups}) must divide channels ({channels}) and "
                             f"out_channels ({out_channels})")
        if radix < 1:
            raise ValueError("split_attention: radix must be >= 1")
        self.out_channels = out_channels
        self.stride = stride
        self.radix = radix
        mid = out_channels * radix
        attn_chs = make_divisible(channels * radix * rd_ratio, min_value=32, divisor=rd_divisor)
        self.conv = nn.Conv2d(channels, mid, kernel_size, stride, kernel_size // 2, groups=groups * radix,
                              bias=False)
        self.bn0 = nn.BatchNorm2d(mid)
        self.act0 = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(out_channels, attn_chs, 1, groups=groups)
        self.bn1 = PooledBatchNorm(attn_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(attn_chs, mid, 1, groups=groups)
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        x = self.act0(self.bn0(self.conv(x)))
        n, rc, h, w = x.shape
        c = rc // self.radix
        splits = x.reshape(n, self.radix, c, h, w)
        gap = splits.sum(dim=1).mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        attn = self.fc2(self.act1(self.bn1(self.fc1(gap))))  # (N, R*C, 1, 1), laid out (G, R, C/G)
        if self.radix > 1:
            # radix softmax: (N, G, R, C/G) softmax over R, reordered to the splits' (R, G, C/G) layout
            attn = attn.reshape(n, self.groups, self.radix, -1).transpose(1, 2).softmax(dim=1)
            attn = attn.reshape(n, self.radix, c, 1, 1)
            return (splits * attn).sum(dim=1)
        return x * attn.sigmoid()
