"""GAM: Global Attention Mechanism (Liu et al., 2021), seed 004 section 21.

Channel sub-module: a two-layer MLP (C -> C/r -> C) applied to the channel vector of every position
(the paper's 3-D permutation keeps the spatial information), sigmoid, rescale. Spatial sub-module: two
7x7 convolutions (C -> C/r -> C) with BN, ReLU between, sigmoid, rescale. r = 4.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


@register_module("gam", ModuleCard(
    paper="Global Attention Mechanism: Retain Information to Enhance Channel-Spatial Interactions",
    venue="arXiv", year=2021, category="hybrid", seed_section=21, paper_url="https://arxiv.org/abs/2112.05561",
    constraints="channels / rate >= 1", ref_params=102720, ref_macs=321126400,
    deviations_fixed=(
        "the seed's description of GAM is copied from SAFM (super-resolution claims); the card follows the "
        "GAM paper",
    ),
))
class GAM(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 rate: int = 4, kernel_size: int = 7) -> None:
        super().__init__()
        check_shape_preserving("gam", channels, out_channels, stride)
        self.out_channels, self.stride = channels, 1
        hidden = max(1, channels // rate)
        self.channel_mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        pad = kernel_size // 2
        self.spatial = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size, padding=pad), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size, padding=pad), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        att = self.channel_mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # per-position channel MLP
        x = x * torch.sigmoid(att)
        return x * torch.sigmoid(self.spatial(x))
