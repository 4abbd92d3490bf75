"""SimAM: a simple, parameter-free attention module (Yang et al., ICML 2021), seed 004 section 5.

Each neuron's importance is the inverse of the minimal energy of the paper's closed form (eq. 5):
e* = (x - mu)^2 / (4 (sigma^2 + lambda)) + 1/2 with mu and sigma^2 = sum (x - mu)^2 / (H*W - 1) taken
per channel of one sample; the output is x * sigmoid(e*). No parameters, a full 3-D weight map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


@register_module("simam", ModuleCard(
    paper="SimAM: A Simple, Parameter-Free Attention Module for Convolutional Neural Networks",
    venue="ICML", year=2021, category="hybrid", seed_section=5,
    paper_url="https://proceedings.mlr.press/v139/yang21o.html", ref_params=0, ref_macs=0,
    deviations_fixed=(
        "a 1x1 map (n = H*W - 1 = 0) gives the neutral weight instead of 0/0 = NaN",
        "n is computed from the tensor, not baked in as a Python int, so one exported graph fits any size",
    ),
))
class SimAM(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 e_lambda: float = 1e-4) -> None:
        super().__init__()
        check_shape_preserving("simam", channels, out_channels, stride)
        self.out_channels, self.stride = channels, 1
        self.e_lambda = e_lambda

    def forward(self, x: Tensor) -> Tensor:
        d = (x - x.mean((2, 3), keepdim=True)).square()
        # n = H*W - 1 as a tensor (so exported graphs stay size-generic), at least 1 for a 1x1 map
        n = (torch.ones_like(x[:1, :1]).sum() - 1).clamp_min(1)
        e_inv = d / (4 * (d.sum((2, 3), keepdim=True) / n + self.e_lambda)) + 0.5
        return x * torch.sigmoid(e_inv)
