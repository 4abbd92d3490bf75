"""Modulated deformable convolution, DCNv2 (Zhu et al., "Deformable ConvNets v2: More Deformable, Better
Results", CVPR 2019, arXiv 1811.11168), seed 004 section 43.

y(p) = sum_k w_k * x(p + p_k + dp_k) * dm_k: a k x k convolution whose K = k*k sampling points are
shifted by learned offsets dp_k (bilinear sampling, zero outside the map) and scaled by learned
modulation scalars dm_k in [0, 1]. Offsets and modulation come from a plain conv on the same input
(2K + K channels per offset group; sigmoid on the K modulation channels), initialised to zero, so
training starts from a regular convolution with dm = 0.5 (as in the paper).

Two implementations of the same operator: ``torchvision.ops.deform_conv2d`` (compiled kernel) and a
plain-PyTorch reference (``grid_sample`` + a grouped matmul) that runs in any dtype and exports to ONNX
(GridSample, opset >= 16) and TorchScript. ``impl="auto"`` uses torchvision for float32/float64 CUDA
tensors and the reference otherwise (CPU, tracing, export, MAC counting).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module


def deform_conv2d_reference(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, bias: Tensor | None,
                            stride: int, padding: int, dilation: int) -> Tensor:
    """Plain-PyTorch modulated deformable convolution with torchvision's argument layout.

    offset: (N, 2 * G_off * K, Ho, Wo), pairs (dy, dx) per kernel point; mask: (N, G_off * K, Ho, Wo).
    """
    n, c, h, w = x.shape
    out_chs, c_per_group, kh, kw = weight.shape
    groups = c // c_per_group
    k = kh * kw
    ho, wo = offset.shape[-2:]
    g_off = offset.shape[1] // (2 * k)
    dev = x.device
    ky = (torch.arange(kh, device=dev) * dilation).repeat_interleave(kw).to(x.dtype)  # (K,)
    kx = (torch.arange(kw, device=dev) * dilation).repeat(kh).to(x.dtype)
    oy = (torch.arange(ho, device=dev) * stride - padding).to(x.dtype)
    ox = (torch.arange(wo, device=dev) * stride - padding).to(x.dtype)
    off = offset.reshape(n, g_off, k, 2, ho, wo)
    py = oy.view(1, 1, 1, ho, 1) + ky.view(1, 1, k, 1, 1) + off[:, :, :, 0]  # (N, G_off, K, Ho, Wo)
    px = ox.view(1, 1, 1, 1, wo) + kx.view(1, 1, k, 1, 1) + off[:, :, :, 1]
    # pixel -> grid_sample coordinates (align_corners=False: pixel i is at (2i + 1) / size - 1)
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)  # (N, G_off, K, Ho, Wo, 2)
    grid = grid.reshape(n * g_off, k * ho, wo, 2)
    xs = x.reshape(n * g_off, c // g_off, h, w)
    sampled = F.grid_sample(xs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(n, g_off, c // g_off, k, ho, wo) * mask.reshape(n, g_off, 1, k, ho, wo)
    # im2col columns (N, groups, C/groups * K, Ho*Wo) x weights (groups, O/groups, C/groups * K)
    cols = sampled.reshape(n, groups, c_per_group * k, ho * wo)
    wmat = weight.reshape(groups, out_chs // groups, c_per_group * k)
    out = torch.matmul(wmat.unsqueeze(0), cols).reshape(n, out_chs, ho, wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


@register_module("deform_conv_v2", ModuleCard(
    paper="Deformable ConvNets v2: More Deformable, Better Results", venue="CVPR", year=2019,
    category="conv", seed_section=43, paper_url="https://arxiv.org/abs/1811.11168",
    constraints="groups and offset_groups divide channels; groups divides out_channels",
    deviations_fixed=(
        "seed section 43 cites InternImage (DCNv3) but its code is a DCNv2-style modulated deformable conv; "
        "the card names DCNv2",
        "seed's sampled-kernel conv used stride=kernel_size on a re-tiled map with manual gather indices; "
        "here the standard operator (torchvision) or an equivalent grid_sample reference",
        "seed registered backward hooks meant to scale the offset learning rate that have no effect; "
        "dropped",
        "seed predicted offsets / masks with a 3x3 conv regardless of the kernel size; here the offset conv "
        "has the deformable conv's kernel, stride and dilation, as in the paper",
    ),
    notes="supports out_channels and stride; impl='auto' | 'torchvision' | 'reference' (numerically "
          "equal; the reference is used for export and MAC counting)",
    ref_params=52507, ref_macs=164376576,
))
class DeformConv2dV2(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1, kernel_size: int = 3,
                 dilation: int = 1, groups: int = 1, offset_groups: int = 1, bias: bool = True,
                 impl: str = "auto") -> None:
        super().__init__()
        out_channels = out_channels or channels
        if channels % groups or out_channels % groups or channels % offset_groups:
            raise ValueError(f"deform_conv_v2: groups ({groups}) must divide channels ({channels}) and "
                             f"out_channels ({out_channels}); offset_groups ({offset_groups}) must divide channels")
        if impl not in ("auto", "torchvision", "reference"):
            raise ValueError(f"deform_conv_v2: impl must be auto, torchvision or reference, got {impl!r}")
        self.out_channels = out_channels
        self.stride = stride
        self.dilation = dilation
        self.padding = dilation * (kernel_size - 1) // 2
        self.impl = impl
        k = kernel_size * kernel_size
        self.num_offsets = 2 * offset_groups * k
        self.weight = nn.Parameter(torch.empty(out_channels, channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.offset_conv = nn.Conv2d(channels, 3 * offset_groups * k, kernel_size, stride, self.padding,
                                     dilation)
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)

    def _use_torchvision(self, x: Tensor) -> bool:
        if self.impl != "auto":
            return self.impl == "torchvision"
        exporting = torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()
        return x.is_cuda and x.dtype in (torch.float32, torch.float64) and not exporting

    def forward(self, x: Tensor) -> Tensor:
        om = self.offset_conv(x)
        offset, mask = om[:, :self.num_offsets], torch.sigmoid(om[:, self.num_offsets:])
        if self._use_torchvision(x):
            from torchvision.ops import deform_conv2d

            return deform_conv2d(x, offset, self.weight, self.bias, stride=self.stride, padding=self.padding,
                                 dilation=self.dilation, mask=mask)
        return deform_conv2d_reference(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                       self.dilation)
