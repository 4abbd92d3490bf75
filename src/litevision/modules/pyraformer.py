"""Pyramidal attention module (PAM) of Pyraformer (Liu et al., ICLR 2022), seed 004 section 18.

A time-series module on (N, C, T) sequences (time-series adapter: each image row is one sequence).
The coarser-scale construction module (CSCM, the paper's bottleneck variant) reduces the width to
C/4, builds a pyramid by strided convolutions (window w_s, BN, ELU), projects back to C and
concatenates all scales to M = T + T/w_1 + T/(w_1 w_2) + ... nodes (LayerNorm). Pyramidal multi-head
attention then lets each node attend only to its ``inner_size`` neighbours at its own scale, its
parent and its children (the last parent adopts any remainder children). The finest T nodes, after the
residual and post-LayerNorm of Pyraformer's encoder layer, are the output.

The mask is built from the sequence length with tensor operations, so one exported graph serves any
length; the seed's mask lets the finest scale attend to every earlier step (``mask[i, 0:right]``)
instead of its ``inner_size`` neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from litevision.modules._adapters import TimeSeriesAdapter
from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


def pyramid_sizes(length: int, window_size: Sequence[int]) -> list[int]:
    sizes = [length]
    for w in window_size:
        sizes.append(sizes[-1] // w)
    return sizes


def pyramid_mask(sizes: Sequence[int], window_size: Sequence[int], inner_size: int, device: torch.device
                 ) -> Tensor:
    """(M, M) bool, True where node i may attend to node j (intra-scale window, parent, children)."""
    scale = torch.cat([torch.full((n,), s, device=device) for s, n in enumerate(sizes)])
    pos = torch.cat([torch.arange(n, device=device) for n in sizes])
    # parent position of each node (the last parent takes the remainder); -1 on the top scale
    parent = torch.cat([torch.minimum(torch.arange(n, device=device) // w, torch.full_like(
        torch.arange(n, device=device), n // w - 1)) for n, w in zip(sizes[:-1], window_size)]
        + [torch.full((sizes[-1],), -1, device=device)])
    same = scale[:, None] == scale[None, :]
    intra = same & ((pos[:, None] - pos[None, :]).abs() <= inner_size // 2)
    child_of = (scale[None, :] == scale[:, None] - 1) & (parent[None, :] == pos[:, None])  # j is i's child
    return intra | child_of | child_of.transpose(0, 1)


class ConvLayer(nn.Module):
    """Strided conv (window w) + BN + ELU: one coarser scale, (N, D, L) -> (N, D, L // w)."""

    def __init__(self, channels: int, window: int) -> None:
        super().__init__()
        self.down = nn.Conv1d(channels, channels, window, stride=window)
        self.norm = nn.BatchNorm1d(channels)
        self.act = nn.ELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.down(x)))


class PyramidalAttention(nn.Module):
    """(N, C, T) -> (N, C, T): CSCM pyramid + one pyramidal attention layer (post-norm residual)."""

    def __init__(self, channels: int, num_heads: int = 4, window_size: Sequence[int] = (2, 2),
                 inner_size: int = 3, bottleneck: int | None = None) -> None:
        super().__init__()
        self.num_heads, self.window_size, self.inner_size = num_heads, tuple(window_size), inner_size
        self.min_length = math.prod(self.window_size)
        inner = bottleneck or max(1, channels // 4)
        self.cscm_down = nn.Linear(channels, inner)
        self.cscm_convs = nn.ModuleList(ConvLayer(inner, w) for w in self.window_size)
        self.cscm_up = nn.Linear(inner, channels)
        self.cscm_norm = nn.LayerNorm(channels)
        self.q, self.k, self.v = (nn.Linear(channels, channels) for _ in range(3))
        self.out = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        n, c, t = x.shape
        if t < self.min_length:
            raise ValueError(f"pyraformer_attention: sequence length {t} is shorter than the pyramid's "
                             f"product of windows {self.min_length} (window_size={self.window_size})")
        seq = x.transpose(1, 2)  # (N, T, C)
        coarse, level = [], self.cscm_down(seq).transpose(1, 2)  # (N, D, T)
        for conv in self.cscm_convs:
            level = conv(level)
            coarse.append(level)
        coarse = self.cscm_up(torch.cat(coarse, dim=2).transpose(1, 2))  # (N, M - T, C)
        nodes = self.cscm_norm(torch.cat([seq, coarse], dim=1))  # (N, M, C)
        m, heads = nodes.shape[1], self.num_heads
        q, k, v = (proj(nodes).reshape(n, m, heads, c // heads).transpose(1, 2) for proj in (self.q, self.k, self.v))
        mask = pyramid_mask(pyramid_sizes(t, self.window_size), self.window_size, self.inner_size, x.device)
        logits = (q @ k.transpose(-1, -2)) * (c // heads) ** -0.5
        attn = logits.masked_fill(~mask, float("-inf")).softmax(dim=-1)  # every node sees itself: no empty row
        out = self.out((attn @ v).transpose(1, 2).reshape(n, m, c))
        out = self.norm(out + nodes)[:, :t]  # finest scale only
        return out.transpose(1, 2)


@register_module("pyraformer_attention", ModuleCard(
    paper="Pyraformer: Low-Complexity Pyramidal Attention for Long-Range Time Series Modeling and Forecasting",
    venue="ICLR", year=2022, category="token_mixer", seed_section=18,
    paper_url="https://openreview.net/forum?id=0EXmFzUn5I", adapter="time_series",
    constraints="channels divisible by num_heads (4); sequence length (W, or H with axis='h') >= "
                "product of window_size (4)",
    min_size=4, ref_params=20144, ref_macs=165580800,
    deviations_fixed=(
        "finest-scale nodes attend to their inner_size neighbours as in the paper (the seed's mask lets them "
        "attend to every earlier step)",
        "mask built from the input length on the input's device (the seed builds it outside the module on a "
        "global CUDA device)",
        "CSCM as the paper's bottleneck construction (down-projection, strided conv + BN + ELU, up-projection); "
        "the seed's 4-D (B, T, N, D) variant with ReLU and no bottleneck is not the paper's",
        "too-short sequences raise a clear ValueError",
    ),
    notes="an image is read as H independent sequences of length W (axis='w'); axis='h' reads columns",
))
def pyraformer_attention(channels: int, *, out_channels: int | None = None, stride: int = 1, num_heads: int = 4,
                         window_size: Sequence[int] = (2, 2), inner_size: int = 3, bottleneck: int | None = None,
                         axis: str = "w") -> nn.Module:
    check_shape_preserving("pyraformer_attention", channels, out_channels, stride)
    if channels % num_heads:
        raise ValueError(f"pyraformer_attention: channels ({channels}) must be divisible by num_heads ({num_heads})")
    inner = PyramidalAttention(channels, num_heads, window_size, inner_size, bottleneck)
    return TimeSeriesAdapter(inner, channels, axis=axis)  # type: ignore[arg-type]
