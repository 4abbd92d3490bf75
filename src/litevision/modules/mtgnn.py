"""Temporal convolution module of MTGNN (Wu et al., "Connecting the Dots: Multivariate Time Series
Forecasting with Graph Neural Networks", KDD 2020, arXiv 2005.11650), seed 004 section 39.

A dilated inception layer runs 1-D convolutions with kernel sizes 2, 3, 6 and 7 (dilation d) in
parallel, each producing out_channels / 4 channels; the outputs are cropped to a common length (the
last positions) and concatenated. The temporal convolution module is two such layers gated like a
WaveNet / gated TCN: tanh(filter(x)) * sigmoid(gate(x)).

Time series layout: each image row is one sequence (N, C, H, W) -> (N*H, C, T=W) via the time-series
adapter (MTGNN's (batch, channels, nodes, time) layout is exactly NCHW with H = nodes). The sequence is
left-padded by d * 6 (MTGNN pads the input on the left to its receptive field), so the output keeps
length T and position t only sees inputs <= t (causal).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._adapters import adapt
from litevision.modules._registry import ModuleCard, register_module

KERNEL_SET = (2, 3, 6, 7)


class DilatedInception(nn.Module):
    """(B, C_in, T) -> (B, C_out, T), causal."""

    def __init__(self, in_chs: int, out_chs: int, dilation: int = 1) -> None:
        super().__init__()
        self.dilation = dilation
        self.convs = nn.ModuleList(
            nn.Conv1d(in_chs, out_chs // len(KERNEL_SET), k, dilation=dilation) for k in KERNEL_SET
        )

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[-1]
        x = F.pad(x, (self.dilation * (max(KERNEL_SET) - 1), 0))
        return torch.cat([conv(x)[..., -length:] for conv in self.convs], dim=1)


class TemporalConv(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, dilation: int = 1) -> None:
        super().__init__()
        self.out_channels = out_chs
        self.filter_conv = DilatedInception(in_chs, out_chs, dilation)
        self.gate_conv = DilatedInception(in_chs, out_chs, dilation)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.filter_conv(x)) * torch.sigmoid(self.gate_conv(x))


@register_module("mtgnn_temporal_conv", ModuleCard(
    paper="Connecting the Dots: Multivariate Time Series Forecasting with Graph Neural Networks",
    venue="KDD", year=2020, category="conv", seed_section=39, paper_url="https://arxiv.org/abs/2005.11650",
    constraints="out_channels divisible by 4 (one quarter per kernel size)", adapter="time_series",
    deviations_fixed=(
        "seed appended Linear layers over the time axis (seq_len fixed at construction) to restore the "
        "length; MTGNN has none: here causal left padding keeps the length for any T",
    ),
    notes="rows of the image are the sequences (MTGNN nodes), W is time; supports out_channels",
    ref_params=36992, ref_macs=118816768,
))
def mtgnn_temporal_conv(channels: int, *, out_channels: int | None = None, stride: int = 1,
                        dilation: int = 1) -> nn.Module:
    out_channels = out_channels or channels
    if stride != 1:
        raise ValueError("mtgnn_temporal_conv keeps the sequence length: stride must be 1")
    if out_channels % len(KERNEL_SET):
        raise ValueError(f"mtgnn_temporal_conv: out_channels ({out_channels}) must be divisible by 4")
    if dilation < 1:
        raise ValueError("mtgnn_temporal_conv: dilation must be >= 1")
    return adapt("time_series", TemporalConv(channels, out_channels, dilation), channels)
