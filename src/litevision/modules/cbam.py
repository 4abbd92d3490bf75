"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018), seed 004 section 2.

Channel attention: a shared MLP over the average- and max-pooled descriptors, summed, sigmoid.
Spatial attention: channel-wise mean and max maps, 7x7 conv, sigmoid. Applied sequentially,
channel first (the paper's best arrangement).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, rd_ratio: float = 1 / 16) -> None:
        super().__init__()
        rd = max(1, int(channels * rd_ratio))
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        avg = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        mx = self.fc2(self.act(self.fc1(x.amax((2, 3), keepdim=True))))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: Tensor) -> Tensor:
        # (N, C, H, W) -> (N, 2, H, W): mean and max over channels
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(s)))


@register_module("cbam", ModuleCard(
    paper="CBAM: Convolutional Block Attention Module", venue="ECCV", year=2018, category="hybrid",
    seed_section=2, constraints="channels * rd_ratio >= 1",
    paper_url="https://arxiv.org/abs/1807.06521", ref_params=612, ref_macs=308352,
    notes="spatial branch has BatchNorm after the 7x7 conv as in the authors' code (and timm's CbamModule)",
))
class CBAM(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 rd_ratio: float = 1 / 16, kernel_size: int = 7) -> None:
        super().__init__()
        if (out_channels or channels) != channels or stride != 1:
            raise ValueError("cbam is a gate: out_channels must equal channels and stride must be 1")
        self.out_channels = channels
        self.stride = 1
        self.channel = ChannelAttention(channels, rd_ratio)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial(self.channel(x))
