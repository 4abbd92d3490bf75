"""S2-MLPv2 spatial-shift attention (Yu et al., "S2-MLPv2: Improved Spatial-Shift MLP Architecture for
Vision", 2021), seed 004 section 10.

The channels are expanded threefold by an MLP and split into three parts: the first is spatially
shifted one way (four channel quarters shifted down, up, right, left), the second the other way
(right, left, down, up), the third kept. A split attention (sum over parts and positions -> MLP ->
softmax over the three parts, per channel) fuses them; a final MLP maps back. Works channels-last
(N, H, W, C): channels-last adapter.

Shifts are out-of-place: a shifted map is the concatenation of the map's first (or last) row and the
rest, so the border row keeps its value as in the paper's pseudo-code. The seed's in-place slice
assignment reads rows it has already overwritten and smears values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._adapters import ChannelsLastAdapter
from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


def _shift(t: Tensor, dim: int, forward: bool) -> Tensor:
    """Shift by one along ``dim`` (1 = H, 2 = W of an (N, H, W, C) tensor); the border keeps its value."""
    n = t.shape[dim]
    if forward:  # out[i] = t[i - 1], out[0] = t[0]
        return torch.cat([t.narrow(dim, 0, 1), t.narrow(dim, 0, n - 1)], dim=dim)
    return torch.cat([t.narrow(dim, 1, n - 1), t.narrow(dim, n - 1, 1)], dim=dim)


def spatial_shift(t: Tensor, order: tuple[tuple[int, bool], ...]) -> Tensor:
    """Shift the four channel quarters of (N, H, W, C) along (dim, forward) pairs given by ``order``."""
    c = t.shape[-1]
    bounds = [0, c // 4, c // 2, 3 * c // 4, c]
    parts = [_shift(t[..., bounds[i]:bounds[i + 1]], dim, fwd) for i, (dim, fwd) in enumerate(order)]
    return torch.cat(parts, dim=-1)


SHIFT_1 = ((1, True), (1, False), (2, True), (2, False))  # quarters: down, up, right, left
SHIFT_2 = ((2, True), (2, False), (1, True), (1, False))  # quarters: right, left, down, up


class SplitAttention(nn.Module):
    """Fuse K (N, H, W, C) maps: a = sum over maps and positions, MLP -> (K, C) logits, softmax over K."""

    def __init__(self, channels: int, num_splits: int = 3) -> None:
        super().__init__()
        self.num_splits = num_splits
        self.mlp1 = nn.Linear(channels, channels, bias=False)
        self.mlp2 = nn.Linear(channels, channels * num_splits, bias=False)

    def forward(self, parts: Tensor) -> Tensor:  # (N, K, H, W, C)
        n, k, _, _, c = parts.shape
        a = parts.sum(dim=(1, 2, 3))  # (N, C)
        attn = self.mlp2(F.gelu(self.mlp1(a))).reshape(n, k, c).softmax(dim=1)
        return (parts * attn[:, :, None, None, :]).sum(dim=1)


class S2Attention(nn.Module):
    """Channels-last (N, H, W, C) -> (N, H, W, C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mlp1 = nn.Linear(channels, channels * 3)
        self.split_attention = SplitAttention(channels, 3)
        self.mlp2 = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[-1]
        y = self.mlp1(x)
        parts = torch.stack([spatial_shift(y[..., :c], SHIFT_1), spatial_shift(y[..., c:2 * c], SHIFT_2),
                             y[..., 2 * c:]], dim=1)
        return self.mlp2(self.split_attention(parts))


@register_module("s2_attention", ModuleCard(
    paper="S2-MLPv2: Improved Spatial-Shift MLP Architecture for Vision", venue="arXiv", year=2021,
    category="token_mixer", seed_section=10, paper_url="https://arxiv.org/abs/2108.01072",
    adapter="channels_last", constraints="channels >= 4 (four shifted quarters)", ref_params=33024, ref_macs=51396608,
    deviations_fixed=(
        "split attention sized from the module's channels (the seed's SplitAttention() defaults to 512, so "
        "only C = 512 ran)",
        "out-of-place shifts: the seed's in-place overlapping slice assignment smears values across rows",
    ),
))
def s2_attention(channels: int, *, out_channels: int | None = None, stride: int = 1) -> nn.Module:
    check_shape_preserving("s2_attention", channels, out_channels, stride)
    if channels < 4:
        raise ValueError(f"s2_attention: needs at least 4 channels (four shifted quarters), got {channels}")
    return ChannelsLastAdapter(S2Attention(channels), channels)
