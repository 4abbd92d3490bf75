"""SAFM: spatially-adaptive feature modulation (Sun et al., ICCV 2023), seed 004 section 19.

The channels are split into ``n_levels`` chunks. Chunk 0 passes a depthwise 3x3 conv at full
resolution; chunk i > 0 is max-pooled to (H / 2^i, W / 2^i), passes a depthwise 3x3 conv and is
upsampled back (nearest). The concatenation is aggregated by a 1x1 conv, passed through GELU and used
to modulate the input: out = GELU(aggr(...)) * x.

Pooling is ``max_pool2d`` with kernel = stride = 2^i: the paper's adaptive max pooling to
(H // 2^i, W // 2^i) gives identical values whenever H and W are multiples of 2^i, and unlike adaptive
pooling it exports to ONNX for any input size. For other sizes the last H mod 2^i rows (and columns)
are left out of that level's pooled windows (they still modulate through level 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._adapters import check_size
from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


@register_module("safm", ModuleCard(
    paper="Spatially-Adaptive Feature Modulation for Efficient Image Super-Resolution", venue="ICCV", year=2023,
    category="hybrid", seed_section=19, paper_url="https://arxiv.org/abs/2302.13800",
    constraints="channels divisible by n_levels (4); H, W >= 2^(n_levels - 1)", min_size=8,
    ref_params=4800, ref_macs=13444816,
    deviations_fixed=(
        "inputs smaller than 2^(n_levels-1) raise a clear ValueError (the seed pools to a 0-sized map)",
        "max_pool2d with kernel = stride = 2^i instead of adaptive_max_pool2d: same result when H, W are "
        "multiples of 2^i, and exportable to ONNX at any size",
    ),
))
class SAFM(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 n_levels: int = 4) -> None:
        super().__init__()
        check_shape_preserving("safm", channels, out_channels, stride)
        if channels % n_levels:
            raise ValueError(f"safm: channels ({channels}) must be divisible by n_levels ({n_levels})")
        self.out_channels, self.stride = channels, 1
        self.n_levels = n_levels
        chunk = channels // n_levels
        self.mfr = nn.ModuleList(nn.Conv2d(chunk, chunk, 3, padding=1, groups=chunk) for _ in range(n_levels))
        self.aggr = nn.Conv2d(channels, channels, 1)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2], x.shape[3]
        check_size("safm", h, w, min_size=2 ** (self.n_levels - 1))
        out = []
        for i, (chunk, conv) in enumerate(zip(x.chunk(self.n_levels, dim=1), self.mfr)):
            if i == 0:
                out.append(conv(chunk))
                continue
            s = conv(F.max_pool2d(chunk, 2 ** i))  # (H // 2^i, W // 2^i)
            out.append(F.interpolate(s, size=(h, w), mode="nearest"))
        return self.act(self.aggr(torch.cat(out, dim=1))) * x
