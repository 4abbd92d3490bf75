"""Coordinate Attention (Hou et al., CVPR 2021), seed 004 section 4.

Channel attention factorised into two 1-D encodings: average over W gives an (H) profile, average
over H a (W) profile; both go through a shared 1x1 conv (C -> mip) + BN + h-swish, are split again and
mapped back to C by one 1x1 conv each; the two sigmoid maps multiply the input (a_h broadcast over W,
a_w over H). mip = max(8, C / reduction), reduction = 32.

The directional pooling is ``x.mean(dim)``: ``AdaptiveAvgPool2d((None, 1))`` (the seed) exports to ONNX
as a fixed-size pooling that is wrong at any other input size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.layers import create_act
from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


@register_module("coord_attention", ModuleCard(
    paper="Coordinate Attention for Efficient Mobile Network Design", venue="CVPR", year=2021,
    category="hybrid", seed_section=4, paper_url="https://arxiv.org/abs/2103.02907",
    ref_params=1688, ref_macs=114688,
    deviations_fixed=(
        "directional pooling by mean over one axis instead of AdaptiveAvgPool2d((None, 1)), which exports to "
        "ONNX as a pooling fixed to the export size",
        "separate inp/oup arguments of the seed removed: a gate's output width is its input width",
    ),
))
class CoordAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 reduction: int = 32, min_mip: int = 8) -> None:
        super().__init__()
        check_shape_preserving("coord_attention", channels, out_channels, stride)
        self.out_channels, self.stride = channels, 1
        mip = max(min_mip, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = create_act("hard_swish")
        self.conv_h = nn.Conv2d(mip, channels, 1)
        self.conv_w = nn.Conv2d(mip, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = x.shape[2]
        x_h = x.mean(3, keepdim=True)  # (N, C, H, 1)
        x_w = x.mean(2, keepdim=True).transpose(2, 3)  # (N, C, 1, W) -> (N, C, W, 1)
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))  # (N, mip, H + W, 1)
        a_h = torch.sigmoid(self.conv_h(y[:, :, :h]))  # (N, C, H, 1)
        a_w = torch.sigmoid(self.conv_w(y[:, :, h:].transpose(2, 3)))  # (N, C, 1, W)
        return x * a_h * a_w
