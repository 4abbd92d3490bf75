"""Shuffle Attention (Zhang & Yang, SA-Net, ICASSP 2021, arXiv 2102.00240), seed 004 section 28.

Channels are split into G groups; each group is split in half. One half gets a channel gate
sigmoid(w1 * GAP(x) + b1), the other a spatial gate sigmoid(w2 * GN(x) + b2) (GroupNorm with one
channel per group); the halves are concatenated and a channel shuffle with 2 groups mixes them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving, largest_divisor_at_most


@register_module("shuffle_attention", ModuleCard(
    paper="SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", venue="ICASSP", year=2021,
    category="hybrid", seed_section=28, paper_url="https://arxiv.org/abs/2102.00240",
    constraints="channels divisible by 2 * groups (default groups: the largest <= 8 that fits)",
    deviations_fixed=(
        "seed needed C divisible by 16 (G = 8 fixed); the group count now falls back to the largest "
        "G <= 8 with C % (2G) == 0, and an explicit invalid G raises a clear ValueError",
    ),
    notes="gate parameters initialised as in the official code: weights 0, biases 1",
    ref_params=24, ref_macs=0,
))
class ShuffleAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 groups: int | None = None) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("shuffle_attention", channels, out_channels, stride)
        self.stride = 1
        if groups is None:
            if channels % 2:
                raise ValueError(f"shuffle_attention: channels ({channels}) must be even")
            groups = largest_divisor_at_most(channels // 2, 8)
        if groups < 1 or channels % (2 * groups):
            raise ValueError(f"shuffle_attention: channels ({channels}) must be divisible by 2 * groups "
                             f"({2 * groups})")
        self.groups = groups
        half = channels // (2 * groups)
        self.gn = nn.GroupNorm(half, half)
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        x = x.reshape(n * self.groups, c // self.groups, h, w)  # (N*G, C/G, H, W)
        x_c, x_s = x.chunk(2, dim=1)
        x_c = x_c * torch.sigmoid(self.cweight * x_c.mean(dim=(2, 3), keepdim=True) + self.cbias)
        x_s = x_s * torch.sigmoid(self.sweight * self.gn(x_s) + self.sbias)
        out = torch.cat([x_c, x_s], dim=1).reshape(n, c, h, w)
        # channel shuffle, 2 groups: (N, 2, C/2, H, W) -> (N, C/2, 2, H, W)
        return out.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
