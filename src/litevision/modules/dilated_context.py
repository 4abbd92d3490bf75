"""Context module of "Multi-Scale Context Aggregation by Dilated Convolutions" (Yu & Koltun, ICLR 2016,
arXiv 1511.07122), seed 004 section 42.

The paper's *basic* context module: C channels throughout, seven 3x3 convolutions with dilations
1, 1, 2, 4, 8, 16, 1 (receptive field 3, 5, 9, 17, 33, 65, 67) and a final 1x1 convolution, every layer
but the last followed by a ReLU ("pointwise truncation"). Multi-scale context is aggregated by the
exponentially growing dilations without losing resolution. Weights use the paper's identity
initialisation (each layer starts as the identity map: centre tap 1 for its own channel), which the
authors found essential.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving


@register_module("dilated_context", ModuleCard(
    paper="Multi-Scale Context Aggregation by Dilated Convolutions", venue="ICLR", year=2016,
    category="spatial", seed_section=42, paper_url="https://arxiv.org/abs/1511.07122",
    deviations_fixed=(
        "seed section 42 reuses the ASPP code of section 27; this is the cited paper's own module: a cascade "
        "of 3x3 dilated convolutions (rates 1, 1, 2, 4, 8, 16, 1) + 1x1, ReLU after all but the last, "
        "identity initialisation",
    ),
    notes="the 'basic' context module (constant width C); the paper's 'large' variant widens the layers "
          "(2C ... 32C) on top of the same dilations",
    ref_params=262656, ref_macs=822083584,
))
class DilatedContextModule(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 dilations: tuple[int, ...] = (1, 1, 2, 4, 8, 16, 1)) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("dilated_context", channels, out_channels, stride)
        self.stride = 1
        layers: list[nn.Module] = []
        for d in dilations:
            layers += [nn.Conv2d(channels, channels, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(channels, channels, 1))
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Identity initialisation: k(t, a) = 1[t = 0] 1[a = b] (Yu & Koltun, section 3)."""
        for m in self.layers:
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
                centre = m.kernel_size[0] // 2
                idx = torch.arange(m.out_channels)
                m.weight[idx, idx, centre, centre] = 1.0
                m.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
