"""DANet dual attention (Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019),
seed 004 section 12.

Two parallel branches on a reduced width C/4, each conv3x3-BN-ReLU -> attention -> conv3x3-BN-ReLU as in
the paper's head, summed and projected back to ``out_channels`` by a 1x1 conv:

- position attention (PAM): S = softmax(B^T C) over all H*W positions (B, C: 1x1 convs to C/32 of the
  input width), E = alpha * D S^T + A with D a 1x1 conv and alpha a learned scale initialised to 0;
- channel attention (CAM): X = softmax(A A^T) over channels, E = beta * X A + A, beta learned from 0.

Both attentions are computed from the input's own size: nothing depends on a size given at
construction (the seed's ``H, W`` arguments were ignored, and its sub-modules were built for 512
channels whatever ``d_model`` said).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module


def _conv_bn_relu(in_chs: int, out_chs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False), nn.BatchNorm2d(out_chs),
                         nn.ReLU(inplace=True))


class PositionAttention(nn.Module):
    def __init__(self, channels: int, qk_ratio: int = 8) -> None:
        super().__init__()
        qk = max(1, channels // qk_ratio)
        self.query = nn.Conv2d(channels, qk, 1)
        self.key = nn.Conv2d(channels, qk, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (N, HW, C')
        k = self.key(x).flatten(2)  # (N, C', HW)
        attn = torch.bmm(q, k).softmax(dim=-1)  # (N, HW, HW): row i = weights of all positions for i
        out = torch.bmm(self.value(x).flatten(2), attn.transpose(1, 2))  # (N, C, HW)
        return self.alpha * out.reshape(b, c, h, w) + x


class ChannelAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        a = x.flatten(2)  # (N, C, HW)
        attn = torch.bmm(a, a.transpose(1, 2)).softmax(dim=-1)  # (N, C, C)
        return self.beta * torch.bmm(attn, a).reshape(b, c, h, w) + x


@register_module("danet", ModuleCard(
    paper="Dual Attention Network for Scene Segmentation", venue="CVPR", year=2019, category="hybrid",
    seed_section=12, paper_url="https://arxiv.org/abs/1809.02983",
    constraints="channels >= 4; O((HW)^2) memory in the position branch", ref_params=24598, ref_macs=255094784,
    deviations_fixed=(
        "no size arguments: the seed's H, W were ignored and its branches were hard-wired to 512 channels",
        "PAM with C/8 query/key convs, value conv and a learned alpha (from 0) plus residual, as in the paper "
        "(the seed runs a generic Linear attention without the residual scale)",
        "CAM without projections, softmax(A A^T) with a learned beta and residual, as in the paper (the "
        "seed's channel branch attends over H*W-wide tokens with an extra Linear output layer and a 3x3 conv)",
        "the paper's branch convs (conv-BN-ReLU before and after each attention) and sum fusion",
    ),
    notes="CAM follows the paper's softmax(A A^T); the authors' code uses softmax(max - A A^T), i.e. the "
          "negated energy",
))
class DANet(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 reduction: int = 4) -> None:
        super().__init__()
        if stride != 1:
            raise ValueError("danet keeps the spatial size: stride must be 1")
        if channels < reduction:
            raise ValueError(f"danet: channels ({channels}) must be >= reduction ({reduction})")
        self.out_channels, self.stride = out_channels or channels, 1
        inter = channels // reduction
        self.conv_pa_in, self.conv_ca_in = _conv_bn_relu(channels, inter), _conv_bn_relu(channels, inter)
        self.position = PositionAttention(inter)
        self.channel = ChannelAttention()
        self.conv_pa_out, self.conv_ca_out = _conv_bn_relu(inter, inter), _conv_bn_relu(inter, inter)
        self.proj = nn.Conv2d(inter, self.out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        pa = self.conv_pa_out(self.position(self.conv_pa_in(x)))
        ca = self.conv_ca_out(self.channel(self.conv_ca_in(x)))
        return self.proj(pa + ca)
