"""Channel shuffle (ShuffleNet): an export-friendly reshape/transpose."""

from __future__ import annotations

from torch import Tensor


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave channels of ``groups`` groups: (N, g*k, H, W) -> (N, k*g, H, W) transposed."""
    b, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"channel_shuffle: {c} channels are not divisible by {groups} groups")
    # (N, g, C/g, H, W) -> (N, C/g, g, H, W) -> (N, C, H, W)
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)
