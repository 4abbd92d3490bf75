"""Multi-spectral channel attention of FcaNet (Qin et al., ICCV 2021, arXiv 2012.11879), seed 004 section 38.

Global average pooling is the lowest 2D-DCT frequency. FcaNet splits the channels into n groups and
gives each group its own DCT basis function (the 'top16' frequencies found by the paper's ablation on a
7x7 grid), so the squeeze step is y_c = sum_{i,j} x_c(i, j) * D_{u_c, v_c}(i, j); the excitation is the
SE bottleneck (FC -> ReLU -> FC -> sigmoid).

Any H x W: as the paper's code does for detection / segmentation inputs, the map is first average-pooled
to the 7 x 7 DCT grid (adaptive pooling written as two pooling matrices, which export at any size).
The DCT filters are a registered (non-trainable) buffer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import adaptive_avg_pool2d, check_shape_preserving

# frequency (u, v) indices on a 7x7 DCT grid, best first, from the paper's single-frequency ablation
_TOP_U = (0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1)
_TOP_V = (0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3)
_LOW_U = (0, 0, 1, 1, 0, 2, 2, 1, 2, 0, 3, 4, 0, 1, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4)
_LOW_V = (0, 1, 0, 1, 2, 0, 1, 2, 2, 3, 0, 0, 4, 3, 1, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3)
_BOT_U = (6, 1, 3, 3, 2, 4, 1, 2, 4, 4, 5, 1, 4, 6, 2, 5, 6, 1, 6, 2, 2, 4, 3, 3, 5, 5, 6, 2, 5, 5, 3, 6)
_BOT_V = (6, 4, 4, 6, 6, 3, 1, 4, 4, 5, 6, 5, 2, 2, 5, 1, 4, 3, 5, 0, 3, 1, 1, 2, 4, 2, 1, 1, 5, 3, 3, 3)
_FREQS = {"top": (_TOP_U, _TOP_V), "low": (_LOW_U, _LOW_V), "bot": (_BOT_U, _BOT_V)}


def _dct_1d(pos: int, freq: int, length: int) -> float:
    """Orthonormal DCT-II basis value (the paper's B^{i,j}_{h,w} factor along one axis)."""
    value = math.cos(math.pi * freq * (pos + 0.5) / length) / math.sqrt(length)
    return value if freq == 0 else value * math.sqrt(2)


def dct_filters(channels: int, size: int, freqs: list[tuple[int, int]]) -> Tensor:
    """(C, size, size): channel group g (C / len(freqs) channels) gets the basis of ``freqs[g]``."""
    out = torch.zeros(channels, size, size)
    part = channels // len(freqs)
    for g, (u, v) in enumerate(freqs):
        basis = torch.tensor([[_dct_1d(i, u, size) * _dct_1d(j, v, size) for j in range(size)]
                              for i in range(size)])
        out[g * part:(g + 1) * part] = basis
    return out


@register_module("fcanet", ModuleCard(
    paper="FcaNet: Frequency Channel Attention Networks", venue="ICCV", year=2021, category="channel",
    seed_section=38, paper_url="https://arxiv.org/abs/2012.11879",
    constraints="channels divisible by the number of frequencies (16 for 'top16'; falls back to the "
                "largest count <= 16 dividing C); channels // reduction >= 1",
    deviations_fixed=(
        "seed stored the DCT filter as a plain tensor attribute (not moved by .to(), not in the state "
        "dict); here a registered buffer",
        "seed pooled to the DCT size with nn.AdaptiveAvgPool2d, which does not export to ONNX when 7 does "
        "not divide H or W; here exact adaptive pooling by pooling matrices (any size, dynamic export)",
    ),
    notes="the DCT grid is the paper's 7x7 frequency space; its per-stage 56/28/14 grids are the same "
          "frequencies scaled, which pooling to 7x7 reproduces for any input size",
    ref_params=512, ref_macs=1581056,
))
class FcaAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 reduction: int = 16, freq_sel: str = "top16", dct_size: int = 7) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("fcanet", channels, out_channels, stride)
        self.stride = 1
        kind, num = freq_sel[:3], int(freq_sel[3:]) if freq_sel[3:].isdigit() else 0
        if kind not in _FREQS or not 1 <= num <= 32:
            raise ValueError(f"fcanet: freq_sel must be top/low/bot followed by 1..32, got {freq_sel!r}")
        while channels % num:  # e.g. C = 24 with top16 -> top12 (the best 12 frequencies)
            num -= 1
        if channels // reduction < 1:
            raise ValueError(f"fcanet: channels ({channels}) // reduction ({reduction}) must be >= 1")
        scale = dct_size / 7  # frequencies are indices on a 7x7 grid
        u, v = _FREQS[kind]
        freqs = [(int(u[i] * scale), int(v[i] * scale)) for i in range(num)]
        self.dct_size = dct_size
        self.register_buffer("dct_filter", dct_filters(channels, dct_size, freqs))
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        # always pooled (identity at 7x7) so a traced graph works at every size
        pooled = adaptive_avg_pool2d(x, (self.dct_size, self.dct_size))
        y = (pooled * self.dct_filter).sum(dim=(2, 3))  # (N, C): one DCT coefficient per channel
        return x * self.fc(y).view(n, c, 1, 1)
