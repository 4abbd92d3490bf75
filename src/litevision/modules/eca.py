"""ECA: Efficient Channel Attention (Wang et al., CVPR 2020), seed 004 section 3.

Global average pooling, then a 1-D convolution across neighbouring channels (no dimensionality
reduction), sigmoid, and channel-wise rescaling. The kernel size adapts to the channel count,
k = |(log2(C) + b) / gamma|_odd with gamma = 2, b = 1 (paper eq. 12), e.g. k = 3 for C = 32 or 64,
k = 5 for C = 256.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """The paper's adaptive kernel size: nearest odd number to (log2(C) + b) / gamma (rounded down)."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@register_module("eca", ModuleCard(
    paper="ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", venue="CVPR",
    year=2020, category="channel", seed_section=3, paper_url="https://arxiv.org/abs/1910.03151",
    ref_params=3, ref_macs=192,
    deviations_fixed=(
        "kernel size derived from C by the paper's rule (the seed hard-codes kernel_size=3)",
        "1-D conv without bias, as in the paper's code (the seed adds a bias)",
        "weight init that never ran in the seed (defined outside the class) is dropped: PyTorch defaults",
    ),
))
class ECA(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 kernel_size: int | None = None, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        check_shape_preserving("eca", channels, out_channels, stride)
        self.out_channels, self.stride = channels, 1
        k = kernel_size or eca_kernel_size(channels, gamma, b)
        if k % 2 == 0:
            raise ValueError(f"eca: kernel_size must be odd, got {k}")
        self.kernel_size = k
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = x.mean((2, 3)).unsqueeze(1)  # (N, C, H, W) -> (N, 1, C)
        y = torch.sigmoid(self.conv(y))
        return x * y.transpose(1, 2).unsqueeze(-1)  # (N, 1, C) -> (N, C, 1, 1)
