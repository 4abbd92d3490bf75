"""ParNet's RepVGG-SSE block (Goyal et al., "Non-deep Networks", NeurIPS 2022, arXiv 2110.07641),
seed 004 section 30.

Three parallel branches summed, then SiLU: 1x1 conv + BN, 3x3 conv + BN, and the Skip-Squeeze-Excitation
branch: BN(x) gated by sigmoid(1x1 conv(GAP(BN(x)))) (a single FC, no bottleneck: ParNet is shallow).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.layers.conv_norm_act import ConvNormAct
from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving


@register_module("parnet_attention", ModuleCard(
    paper="Non-deep Networks", venue="NeurIPS", year=2022, category="hybrid", seed_section=30,
    paper_url="https://arxiv.org/abs/2110.07641",
    deviations_fixed=(
        "seed's SSE branch gated the raw input; the paper's Skip-Squeeze-Excitation branch has a BatchNorm "
        "on the skip path before the squeeze-excitation gate",
        "seed's convolutions had biases before BatchNorm (redundant); here conv + BN without bias",
    ),
    notes="seed calls it 'Partnet'; the paper's network is ParNet. The 1x1 and 3x3 branches can be merged "
          "into one 3x3 conv at deployment (RepVGG); not done here",
    ref_params=45504, ref_macs=128454656,
))
class ParNetAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("parnet_attention", channels, out_channels, stride)
        self.stride = 1
        self.conv1x1 = ConvNormAct(channels, channels, 1, act_layer=None)
        self.conv3x3 = ConvNormAct(channels, channels, 3, act_layer=None)
        self.sse_bn = nn.BatchNorm2d(channels)
        self.sse_fc = nn.Conv2d(channels, channels, 1)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.sse_bn(x)
        sse = skip * torch.sigmoid(self.sse_fc(skip.mean(dim=(2, 3), keepdim=True)))
        return self.act(self.conv1x1(x) + self.conv3x3(x) + sse)
