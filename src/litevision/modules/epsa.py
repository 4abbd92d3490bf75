"""PSA: pyramid split attention of EPSANet (Zhang et al., ACCV 2022), seed 004 section 22.

Split-and-concat (SPC): S = 4 convolutions of the input with kernels 3, 5, 7, 9 and groups
1, 4, 8, 16 each produce out_channels / 4 channels (multi-scale features). A shared SE weight module
(global pooling -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid) gives each scale's channel weights, a
softmax across the S scales recalibrates them (channel-wise attention across scales), and the
re-weighted scales are concatenated. It replaces the 3x3 convolution of a ResNet bottleneck, so it
takes ``out_channels`` and ``stride``.

Groups are reduced to gcd(group, in_channels, out_channels / 4) when the widths are not divisible
(e.g. 8 instead of 16 for 32 output channels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module


class SEWeight(nn.Module):
    """Channel weights of one scale: (N, C, H, W) -> (N, C, 1, 1) in (0, 1)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))


@register_module("epsa", ModuleCard(
    paper="EPSANet: An Efficient Pyramid Squeeze Attention Block on Convolutional Neural Network", venue="ACCV",
    year=2022, category="conv", seed_section=22, paper_url="https://arxiv.org/abs/2105.14447",
    constraints="out_channels divisible by the number of scales (4)", ref_params=27121, ref_macs=84897920,
    deviations_fixed=(
        "scales are concatenated (the seed sums them, which collapses the multi-scale split)",
        "each scale is a convolution of the whole input with its own group count (1, 4, 8, 16), as in the "
        "paper's eq. 5 and the authors' code; the seed convolves C/4-channel slices with dense kernels",
        "one SE weight module shared by all scales, as in the paper",
        "weights are registered parameters of named submodules (state dict round-trips)",
    ),
))
class EPSA(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 kernel_sizes: Sequence[int] = (3, 5, 7, 9), groups: Sequence[int] = (1, 4, 8, 16),
                 se_reduction: int = 16) -> None:
        super().__init__()
        out_channels = out_channels or channels
        scales = len(kernel_sizes)
        if out_channels % scales or len(groups) != scales:
            raise ValueError(f"epsa: out_channels ({out_channels}) must be divisible by the number of scales "
                             f"({scales}), and groups must list one count per kernel size")
        self.out_channels, self.stride = out_channels, stride
        self.split = out_channels // scales
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, self.split, k, stride=stride, padding=k // 2, bias=False,
                      groups=math.gcd(g, channels, self.split))
            for k, g in zip(kernel_sizes, groups))
        self.se = SEWeight(self.split, se_reduction)

    def forward(self, x: Tensor) -> Tensor:
        feats = torch.stack([conv(x) for conv in self.convs], dim=1)  # (N, S, C/S, H', W')
        weights = torch.stack([self.se(f) for f in feats.unbind(1)], dim=1).softmax(dim=1)  # over scales
        out = feats * weights
        return out.flatten(1, 2)  # concatenate the scales: (N, C, H', W')
