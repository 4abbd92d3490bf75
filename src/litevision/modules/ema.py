"""EMA: Efficient Multi-scale Attention with cross-spatial learning (Ouyang et al., ICASSP 2023),
seed 004 section 13.

The channels are split into G groups folded into the batch axis (per sample, so samples never mix).
A 1x1 branch encodes the two directional averages (as Coordinate Attention, without reduction) and
re-weights the group, followed by GroupNorm; a parallel 3x3 branch captures local context. Cross-spatial
learning: each branch's global-average descriptor (softmax over channels) is multiplied with the other
branch's map, the two products are summed into one H x W map per group, and its sigmoid re-weights the
group.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


@register_module("ema", ModuleCard(
    paper="Efficient Multi-Scale Attention Module with Cross-Spatial Learning", venue="ICASSP", year=2023,
    category="hybrid", seed_section=13, paper_url="https://arxiv.org/abs/2305.13563",
    constraints="channels divisible by groups (8)", ref_params=672, ref_macs=14909440,
    deviations_fixed=(
        "directional pooling by mean over one axis instead of AdaptiveAvgPool2d((None, 1)) (exports to ONNX as "
        "a pooling fixed to the export size)",
        "device-independent (the seed's example moves to CUDA)",
    ),
))
class EMA(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 groups: int = 8) -> None:
        super().__init__()
        check_shape_preserving("ema", channels, out_channels, stride)
        if channels % groups:
            raise ValueError(f"ema: channels ({channels}) must be divisible by groups ({groups})")
        self.out_channels, self.stride = channels, 1
        self.groups = groups
        cg = channels // groups
        self.gn = nn.GroupNorm(cg, cg)
        self.conv1x1 = nn.Conv2d(cg, cg, 1)
        self.conv3x3 = nn.Conv2d(cg, cg, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = self.groups
        gx = x.reshape(b * g, c // g, h, w)
        x_h = gx.mean(3, keepdim=True)  # (N*G, C/G, H, 1)
        x_w = gx.mean(2, keepdim=True).transpose(2, 3)  # (N*G, C/G, W, 1)
        hw = self.conv1x1(torch.cat([x_h, x_w], dim=2))
        a_h, a_w = hw[:, :, :h], hw[:, :, h:].transpose(2, 3)
        x1 = self.gn(gx * a_h.sigmoid() * a_w.sigmoid())  # 1x1 branch
        x2 = self.conv3x3(gx)  # 3x3 branch
        d1 = x1.mean((2, 3)).softmax(dim=-1).unsqueeze(1)  # (N*G, 1, C/G)
        d2 = x2.mean((2, 3)).softmax(dim=-1).unsqueeze(1)
        weights = d1 @ x2.flatten(2) + d2 @ x1.flatten(2)  # (N*G, 1, HW)
        return (gx * weights.reshape(b * g, 1, h, w).sigmoid()).reshape(b, c, h, w)
