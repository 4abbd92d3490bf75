"""Small helpers shared by several plug-in modules (argument checks, head counts, a batch-1-safe
BatchNorm for pooled descriptors, export-friendly adaptive average pooling)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def check_shape_preserving(name: str, channels: int, out_channels: int | None, stride: int) -> int:
    """Modules that only re-weight or mix their input keep C and H x W: reject other requests clearly."""
    if (out_channels or channels) != channels or stride != 1:
        raise ValueError(f"{name} keeps the input shape: out_channels must equal channels ({channels}) "
                         f"and stride must be 1 (got out_channels={out_channels}, stride={stride})")
    return channels


def resolve_heads(name: str, channels: int, num_heads: int | None, head_dim: int = 32) -> int:
    """``num_heads`` if given (must divide ``channels``), else ``channels // head_dim`` heads (at least 1)
    rounded down to a divisor of ``channels``."""
    if num_heads is not None:
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f"{name}: channels ({channels}) must be divisible by num_heads ({num_heads})")
        return num_heads
    heads = max(1, channels // head_dim)
    while channels % heads:
        heads -= 1
    return heads


def largest_divisor_at_most(value: int, limit: int) -> int:
    """The largest divisor of ``value`` that is <= ``limit`` (1 at least)."""
    for d in range(min(value, limit), 0, -1):
        if value % d == 0:
            return d
    return 1


class PooledBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d for globally pooled (N, C, 1, 1) descriptors that also trains at batch size 1.

    With one value per channel the batch statistics are that value itself, so the normalised output is
    exactly ``bias``; ``nn.BatchNorm2d`` raises instead. Here that case returns ``bias`` (keeping the
    graph so ``weight`` gets a zero gradient) and leaves the running statistics untouched. Every other
    case is plain BatchNorm2d.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.numel() == x.shape[1]:
            centred = x * 0  # x minus its own (single-value) batch mean; its gradient is 0 too
            scale = self.weight.view(1, -1, 1, 1) if self.weight is not None else 1.0
            shift = self.bias.view(1, -1, 1, 1) if self.bias is not None else 0.0
            return centred * scale + shift
        return super().forward(x)


def adaptive_pool_matrix(size_in: int, size_out: int, like: Tensor) -> Tensor:
    """(size_out, size_in) matrix P with ``P @ v`` == ``adaptive_avg_pool1d(v, size_out)``.

    Bin i covers [floor(i * n / m), ceil((i + 1) * n / m)) exactly as PyTorch's adaptive pooling. Built
    from ``arange`` so a traced / ONNX graph keeps it symbolic in ``size_in`` (``AdaptiveAvgPool2d``
    exports only when the output size divides the input size).
    """
    pos = torch.arange(size_in, device=like.device).view(1, -1)
    idx = torch.arange(size_out, device=like.device).view(-1, 1)
    start = torch.div(idx * size_in, size_out, rounding_mode="floor")
    end = torch.div((idx + 1) * size_in + size_out - 1, size_out, rounding_mode="floor")
    mask = ((pos >= start) & (pos < end)).to(like.dtype)
    return mask / mask.sum(dim=1, keepdim=True)


def adaptive_avg_pool2d(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Export-friendly ``F.adaptive_avg_pool2d(x, size)`` for (N, C, H, W) via two pooling matrices."""
    ph = adaptive_pool_matrix(x.shape[-2], size[0], x)  # (h, H)
    pw = adaptive_pool_matrix(x.shape[-1], size[1], x)  # (w, W)
    return ph @ x @ pw.transpose(0, 1)  # (N, C, H, W) -> (N, C, h, w)
