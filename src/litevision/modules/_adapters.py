"""Adapters from other tensor layouts to the plug-in module contract (N, C, H, W) -> (N, C', H, W).

Several seed-004 modules were written for another layout. Rather than rewriting each paper's maths
around NCHW, the module keeps the layout its paper uses and is wrapped in one of these adapters; the
module card names the adapter (``card.adapter``) so users know what the module really sees.

- :class:`TokenAdapter` (``"token"``): the inner module maps tokens (N, L, C) -> (N, L, C'), with
  L = H * W in row-major order (the ViT convention). Modules that need the grid (strided key/value
  reduction, local windows) set the class attribute ``needs_size = True`` and receive ``size=(H, W)``.
- :class:`ChannelsLastAdapter` (``"channels_last"``): the inner module maps (N, H, W, C) -> (N, H, W, C').
- :class:`TimeSeriesAdapter` (``"time_series"``): the inner module maps sequences (N, C, T) -> (N, C', T)
  (the Conv1d layout of Pyraformer / MTGNN-style temporal modules). An image is read as a batch of
  sequences: with ``axis="w"`` (default) each of the H rows is one sequence of length T = W, so
  (N, C, H, W) -> (N * H, C, W); with ``axis="h"`` each column is one sequence of length T = H. The
  sequences of one image never see each other, and never see other images (rows of different samples
  stay in different batch entries), so the batch-independence contract holds.

Each adapter exposes ``out_channels`` (the inner module's, else its input channels) and ``stride = 1``.
The inner module is the child ``inner``: its parameters appear as ``inner.*`` in the state dict.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn


def _out_channels(inner: nn.Module, channels: int) -> int:
    return int(getattr(inner, "out_channels", None) or channels)


class TokenAdapter(nn.Module):
    """(N, C, H, W) -> (N, H*W, C) tokens -> ``inner`` -> (N, C', H, W)."""

    def __init__(self, inner: nn.Module, channels: int) -> None:
        super().__init__()
        self.inner = inner
        self.pass_size = bool(getattr(inner, "needs_size", False))
        self.out_channels = _out_channels(inner, channels)
        self.stride = 1

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, C, H, W) -> (N, H*W, C)
        out = self.inner(tokens, (h, w)) if self.pass_size else self.inner(tokens)
        return out.transpose(1, 2).reshape(n, -1, h, w)  # (N, H*W, C') -> (N, C', H, W)


class ChannelsLastAdapter(nn.Module):
    """(N, C, H, W) -> (N, H, W, C) -> ``inner`` -> (N, C', H, W)."""

    def __init__(self, inner: nn.Module, channels: int) -> None:
        super().__init__()
        self.inner = inner
        self.out_channels = _out_channels(inner, channels)
        self.stride = 1

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TimeSeriesAdapter(nn.Module):
    """(N, C, H, W) -> (N*H, C, W) row sequences (or (N*W, C, H) columns) -> ``inner`` -> (N, C', H, W)."""

    def __init__(self, inner: nn.Module, channels: int, axis: Literal["w", "h"] = "w") -> None:
        super().__init__()
        if axis not in ("w", "h"):
            raise ValueError(f"axis must be 'w' (rows are sequences) or 'h' (columns are), got {axis!r}")
        self.inner = inner
        self.axis = axis
        self.out_channels = _out_channels(inner, channels)
        self.stride = 1

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if self.axis == "w":
            seq = x.permute(0, 2, 1, 3).reshape(n * h, c, w)  # (N, C, H, W) -> (N*H, C, W)
            out = self.inner(seq)
            return out.reshape(n, h, -1, w).permute(0, 2, 1, 3)
        seq = x.permute(0, 3, 1, 2).reshape(n * w, c, h)  # (N, C, H, W) -> (N*W, C, H)
        out = self.inner(seq)
        return out.reshape(n, w, -1, h).permute(0, 2, 3, 1)


ADAPTER_CLASSES: dict[str, type[nn.Module]] = {
    "token": TokenAdapter,
    "channels_last": ChannelsLastAdapter,
    "time_series": TimeSeriesAdapter,
}


def adapt(layout: str, inner: nn.Module, channels: int, **kwargs: str) -> nn.Module:
    """Wrap ``inner`` (working in ``layout``: token / channels_last / time_series) to the NCHW contract."""
    try:
        cls = ADAPTER_CLASSES[layout]
    except KeyError:
        raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(ADAPTER_CLASSES)}") from None
    return cls(inner, channels, **kwargs)


def check_size(name: str, h: int, w: int, min_size: int = 1, divisor: int = 1) -> None:
    """Raise a clear ``ValueError`` when (H, W) is below ``min_size`` or not a multiple of ``divisor``.

    Size-dependent modules call this first in ``forward`` instead of letting a reshape or an assert fail.
    """
    if h < min_size or w < min_size:
        raise ValueError(f"{name}: input is {h}x{w}, but this module needs H and W >= {min_size}")
    if h % divisor or w % divisor:
        raise ValueError(f"{name}: input is {h}x{w}, but H and W must be multiples of {divisor}")
