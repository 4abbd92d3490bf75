"""Selective Kernel convolution (Li et al., CVPR 2019, arXiv 1903.06586), seed 004 section 25.

Split: M branches of grouped 3x3 convolutions (+BN+ReLU); the "5x5" branch is a 3x3 convolution with
dilation 2, as in the paper. Fuse: U = sum of branches, s = GAP(U), z = ReLU(BN(FC(s))) with
d = max(C / r, L). Select: one FC per branch maps z back to C logits; a softmax *across the branches*
gives per-channel weights; V = sum_m a_m * U_m.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from litevision.layers.conv_norm_act import ConvNormAct
from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import PooledBatchNorm


@register_module("sk_attention", ModuleCard(
    paper="Selective Kernel Networks", venue="CVPR", year=2019, category="conv", seed_section=25,
    paper_url="https://arxiv.org/abs/1903.06586",
    constraints="groups (default gcd(32, C)) must divide channels and out_channels",
    deviations_fixed=(
        "seed used dense 1/3/5/7 kernels; the paper's SK unit has M=2 grouped (G=32) 3x3 branches, the "
        "second with dilation 2 standing in for 5x5",
        "seed's fuse FC had no BN/ReLU; the paper has z = ReLU(BN(W s))",
    ),
    notes="the fuse BatchNorm sees one value per channel at batch 1 in training: it then returns its bias "
          "(the exact single-sample BN result) instead of raising",
    ref_params=8768, ref_macs=7231488,
))
class SKAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 num_branches: int = 2, groups: int | None = None, rd_ratio: float = 1 / 16,
                 min_dim: int = 32) -> None:
        super().__init__()
        out_channels = out_channels or channels
        groups = groups or math.gcd(32, math.gcd(channels, out_channels))
        if channels % groups or out_channels % groups:
            raise ValueError(f"sk_attention: groups ({groups}) must divide channels ({channels}) "
                             f"and out_channels ({out_channels})")
        if num_branches < 1:
            raise ValueError("sk_attention: num_branches must be >= 1")
        self.out_channels = out_channels
        self.stride = stride
        # branch m: 3x3 conv with dilation m + 1 (receptive field 3, 5, 7, ...)
        self.branches = nn.ModuleList(
            ConvNormAct(channels, out_channels, 3, stride, dilation=m + 1, groups=groups)
            for m in range(num_branches)
        )
        d = max(int(out_channels * rd_ratio), min_dim)
        self.fc = nn.Conv2d(out_channels, d, 1, bias=False)
        self.bn = PooledBatchNorm(d)
        self.act = nn.ReLU(inplace=True)
        self.fcs = nn.ModuleList(nn.Conv2d(d, out_channels, 1, bias=False) for _ in range(num_branches))

    def forward(self, x: Tensor) -> Tensor:
        feats = torch.stack([b(x) for b in self.branches], dim=1)  # (N, M, C, H, W)
        s = feats.sum(dim=1).mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        z = self.act(self.bn(self.fc(s)))
        logits = torch.stack([fc(z) for fc in self.fcs], dim=1)  # (N, M, C, 1, 1)
        return (logits.softmax(dim=1) * feats).sum(dim=1)
