"""Dynamic Snake Convolution of DSCNet (Qi et al., "Dynamic Snake Convolution based on Topological Geometric
Constraints for Tubular Structure Segmentation", ICCV 2023, arXiv 2307.08388), seed 004 section 44.

A K-point kernel laid out along one axis (``morph="x"``: along the width; ``"y"``: along the height).
A 3x3 conv + BN + tanh predicts one offset in [-1, 1] per point and pixel, perpendicular to the kernel
axis; the offsets are *accumulated* outwards from the fixed centre point (point c + i moves by the
sum of the offsets of points c+1 .. c+i, likewise to the left), so the kernel bends like a snake
instead of scattering like a deformable kernel. The K bilinearly sampled points are combined by a
K-tap convolution, then GroupNorm + ReLU.

``morph="both"`` (default) is DSCNet's multi-view block: a standard 3x3 conv, the x-snake and the
y-snake in parallel (each conv + GN + ReLU), concatenated and fused by a 3x3 conv + GN + ReLU.

Sampling uses ``grid_sample`` per sample (zeros outside the map), so no sample ever reads another
sample's pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import largest_divisor_at_most


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(largest_divisor_at_most(channels, max(1, channels // 4)), channels)


def snake_offsets(offset: Tensor) -> Tensor:
    """(N, K, H, W) per-point offsets -> cumulative positions: centre 0, then running sums outwards."""
    k = offset.shape[1]
    c = k // 2
    right = torch.cumsum(offset[:, c + 1:], dim=1)
    left = torch.flip(torch.cumsum(torch.flip(offset[:, :c], dims=[1]), dim=1), dims=[1])
    return torch.cat([left, torch.zeros_like(offset[:, c:c + 1]), right], dim=1)


class SnakeConv(nn.Module):
    """One dynamic snake convolution (one morphology): (N, C, H, W) -> (N, O, H, W)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 9, extend_scope: float = 1.0,
                 morph: str = "x") -> None:
        super().__init__()
        if morph not in ("x", "y"):
            raise ValueError(f"morph must be 'x' or 'y', got {morph!r}")
        self.kernel_size = kernel_size
        self.extend_scope = extend_scope
        self.morph = morph
        self.offset_conv = nn.Conv2d(in_chs, kernel_size, 3, padding=1)
        self.offset_bn = nn.BatchNorm2d(kernel_size)
        # the K-tap conv over sampled points: (O, C * K) weights, i.e. the seed's (K, 1) / (1, K) conv
        self.conv = nn.Conv2d(in_chs * kernel_size, out_chs, 1)
        self.norm = _gn(out_chs)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        k = self.kernel_size
        swing = snake_offsets(torch.tanh(self.offset_bn(self.offset_conv(x)))) * self.extend_scope  # (N,K,H,W)
        steps = (torch.arange(k, device=x.device) - k // 2).to(x.dtype).view(1, k, 1, 1)
        rows = torch.arange(h, device=x.device).to(x.dtype).view(1, 1, h, 1)
        cols = torch.arange(w, device=x.device).to(x.dtype).view(1, 1, 1, w)
        if self.morph == "x":  # kernel along the width, bending vertically
            py, px = rows + swing, (cols + steps).expand(n, k, h, w)
        else:  # kernel along the height, bending horizontally
            py, px = (rows + steps).expand(n, k, h, w), cols + swing
        grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)  # (N, K, H, W, 2)
        sampled = F.grid_sample(x, grid.reshape(n, k * h, w, 2), mode="bilinear", padding_mode="zeros",
                                align_corners=False)  # (N, C, K*H, W)
        sampled = sampled.reshape(n, c * k, h, w)  # channel-major, then the K points
        return self.act(self.norm(self.conv(sampled)))


class _ConvGnRelu(nn.Sequential):
    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__(nn.Conv2d(in_chs, out_chs, 3, padding=1), _gn(out_chs), nn.ReLU(inplace=True))


@register_module("dynamic_snake_conv", ModuleCard(
    paper="Dynamic Snake Convolution based on Topological Geometric Constraints for Tubular Structure "
          "Segmentation", venue="ICCV", year=2023, category="conv", seed_section=44,
    paper_url="https://arxiv.org/abs/2307.08388",
    constraints="none; out_channels selectable",
    deviations_fixed=(
        "seed's bilinear gather subtracted the per-sample base index (index_a0 = base_y0 - base + x0), so "
        "every sample read sample 0's pixels (batch mixing); here grid_sample per sample",
        "seed accumulated offsets only up to point c + K//2 - 1 (range(1, center)), leaving the outermost "
        "points un-accumulated and detached; here the full running sum, differentiable",
        "seed needed a device argument and built coordinates on the CPU; here buffers-free arange on the "
        "input's device",
        "each snake predicts only the K offsets its morphology uses (the seed predicted 2K and dropped half)",
    ),
    notes="morph='both' (DSCNet encoder block: 3x3 conv | x-snake | y-snake -> concat -> 3x3 conv) or a "
          "single 'x' / 'y' snake; kernel_size 9 and extend_scope 1 as in DSCNet; points outside the map "
          "read zeros (the seed clamps coordinates to the border)",
    ref_params=232374, ref_macs=726147072,
))
class DynamicSnakeConv(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1, kernel_size: int = 9,
                 extend_scope: float = 1.0, morph: str = "both") -> None:
        super().__init__()
        if stride != 1:
            raise ValueError("dynamic_snake_conv keeps the resolution: stride must be 1")
        if kernel_size < 1:
            raise ValueError("dynamic_snake_conv: kernel_size must be >= 1")
        out_channels = out_channels or channels
        self.out_channels = out_channels
        self.stride = 1
        self.morph = morph
        if morph == "both":
            self.conv = _ConvGnRelu(channels, out_channels)
            self.snake_x = SnakeConv(channels, out_channels, kernel_size, extend_scope, "x")
            self.snake_y = SnakeConv(channels, out_channels, kernel_size, extend_scope, "y")
            self.fuse = _ConvGnRelu(3 * out_channels, out_channels)
        elif morph in ("x", "y"):
            self.snake = SnakeConv(channels, out_channels, kernel_size, extend_scope, morph)
        else:
            raise ValueError(f"dynamic_snake_conv: morph must be 'both', 'x' or 'y', got {morph!r}")

    def forward(self, x: Tensor) -> Tensor:
        if self.morph != "both":
            return self.snake(x)
        return self.fuse(torch.cat([self.conv(x), self.snake_x(x), self.snake_y(x)], dim=1))
