"""Triplet Attention (Misra et al., "Rotate to Attend", WACV 2021), seed 004 section 9.

Three branches, each rotating the tensor so a different pair of dimensions forms the "spatial" plane:
(C, W) with H pooled, (H, C) with W pooled, and (H, W) with C pooled. Each branch: Z-pool (max and mean
over the pooled axis) -> 7x7 conv (2 -> 1) + BN -> sigmoid -> rescale; the three results are averaged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


class AttentionGate(nn.Module):
    """Z-pool over dim 1, 7x7 conv + BN, sigmoid gate (the paper's branch)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        z = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(z)))


@register_module("triplet_attention", ModuleCard(
    paper="Rotate to Attend: Convolutional Triplet Attention Module", venue="WACV", year=2021,
    category="hybrid", seed_section=9, paper_url="https://arxiv.org/abs/2010.03045",
    ref_params=300, ref_macs=1009792,
    deviations_fixed=("sigmoid is not applied in place (torch.sigmoid_ in the seed)",),
))
class TripletAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 kernel_size: int = 7, no_spatial: bool = False) -> None:
        super().__init__()
        check_shape_preserving("triplet_attention", channels, out_channels, stride)
        self.out_channels, self.stride = channels, 1
        self.cw = AttentionGate(kernel_size)
        self.hc = AttentionGate(kernel_size)
        self.hw = None if no_spatial else AttentionGate(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        out_cw = self.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)  # H pooled: attention over (C, W)
        out_hc = self.hc(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)  # W pooled: attention over (H, C)
        if self.hw is None:
            return (out_cw + out_hc) / 2
        return (out_cw + out_hc + self.hw(x)) / 3
