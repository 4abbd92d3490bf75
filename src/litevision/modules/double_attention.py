"""A^2 double attention block (Chen et al., "A^2-Nets: Double Attention Networks", NeurIPS 2018,
arXiv 1810.11579), seed 004 section 37.

A = conv_A(x) (c_m feature maps), B = conv_B(x) (c_n attention maps), V = conv_V(x) (c_n attention
vectors). Step 1, gather: G = A softmax(B)^T with each of the c_n attention maps normalised over the
H*W positions (second-order attention pooling: c_n global descriptors). Step 2, distribute:
Z = G softmax(V) with each position's vector normalised over the c_n descriptors. A 1x1 conv maps Z back
to C channels; the block is used residually (x + ...) when inserted into a ResNet stage.
"""

from __future__ import annotations

from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving


@register_module("double_attention", ModuleCard(
    paper="A^2-Nets: Double Attention Networks", venue="NeurIPS", year=2018, category="spatial",
    seed_section=37, paper_url="https://arxiv.org/abs/1810.11579",
    deviations_fixed=(
        "seed called F.softmax without dim on (N, c_n, H*W) tensors, which softmaxes over the BATCH axis "
        "(mixing samples); here the attention maps are normalised over positions and the attention vectors "
        "over the c_n descriptors, as the paper defines",
    ),
    notes="c_m = c_n = C // 4 by default (at least 1). The block is residual (x + reconstruction) as it is "
          "inserted into ResNet stages; residual=False returns the reconstruction only, like the seed",
    ref_params=4208, ref_macs=14450688,
))
class DoubleAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 c_m: int | None = None, c_n: int | None = None, residual: bool = True) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("double_attention", channels, out_channels, stride)
        self.stride = 1
        self.c_m = c_m or max(1, channels // 4)
        self.c_n = c_n or max(1, channels // 4)
        self.residual = residual
        self.conv_a = nn.Conv2d(channels, self.c_m, 1)
        self.conv_b = nn.Conv2d(channels, self.c_n, 1)
        self.conv_v = nn.Conv2d(channels, self.c_n, 1)
        self.reconstruct = nn.Conv2d(self.c_m, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        feats = self.conv_a(x).flatten(2)  # (N, c_m, HW)
        attn_maps = self.conv_b(x).flatten(2).softmax(dim=-1)  # (N, c_n, HW): over positions
        attn_vectors = self.conv_v(x).flatten(2).softmax(dim=1)  # (N, c_n, HW): over descriptors
        descriptors = feats @ attn_maps.transpose(1, 2)  # (N, c_m, c_n)
        z = (descriptors @ attn_vectors).reshape(n, self.c_m, h, w)
        out = self.reconstruct(z)
        return x + out if self.residual else out
