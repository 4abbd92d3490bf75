"""Partial convolution of FasterNet (Chen et al., "Run, Don't Walk: Chasing Higher FLOPS for Faster
Neural Networks", CVPR 2023, arXiv 2303.03667), seed 004 section 41.

A regular k x k convolution on the first C / n_div channels only (n_div = 4 in FasterNet); the other
channels pass through untouched. In FasterNet two point-wise convolutions follow it; those belong to the
host block.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving


@register_module("partial_conv", ModuleCard(
    paper="Run, Don't Walk: Chasing Higher FLOPS for Faster Neural Networks", venue="CVPR", year=2023,
    category="conv", seed_section=41, paper_url="https://arxiv.org/abs/2303.03667",
    constraints="channels >= n_div (default 4)",
    deviations_fixed=(
        "seed's 'slicing' forward wrote into a clone with an in-place slice assignment and picked forward by "
        "rebinding self.forward (breaks scripting / deepcopy); here split -> conv -> concat only",
        "default n_div = 4 (FasterNet's partial ratio 1/4; the seed example used 2)",
    ),
    ref_params=2304, ref_macs=7225344,
))
class PartialConv(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1, n_div: int = 4,
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("partial_conv", channels, out_channels, stride)
        self.stride = 1
        self.dim_conv = channels // n_div
        if self.dim_conv < 1:
            raise ValueError(f"partial_conv: channels ({channels}) must be >= n_div ({n_div})")
        self.dim_untouched = channels - self.dim_conv
        self.partial_conv = nn.Conv2d(self.dim_conv, self.dim_conv, kernel_size, padding=kernel_size // 2,
                                      bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = torch.split(x, [self.dim_conv, self.dim_untouched], dim=1)
        return torch.cat([self.partial_conv(x1), x2], dim=1)
