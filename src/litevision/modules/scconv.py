"""SCConv: Spatial and Channel reconstruction Convolution (Li et al., CVPR 2023), seed 004 section 40.

Spatial Reconstruction Unit (SRU): GroupNorm; each channel's importance is its GN scale gamma_c /
sum(gamma); W = sigmoid(GN(X) * importance); weights above the threshold (0.5) become 1 in W1 and 0 in
W2, the others keep their value in both; X1 = W1 * X, X2 = W2 * X (informative / less informative);
cross reconstruction: [X1a + X2b, X1b + X2a] over the channel halves.

Channel Reconstruction Unit (CRU): split channels alpha : 1 - alpha, squeeze each part by a 1x1 conv
(ratio 2); upper part -> group-wise conv (k x k, groups 2) + point-wise conv; lower part -> [point-wise
conv, itself]; fuse: a softmax over the channels of the pooled [Y1, Y2] descriptors weights them and
Y1' + Y2' is the output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving


class SRU(nn.Module):
    def __init__(self, channels: int, group_num: int = 4, gate_threshold: float = 0.5) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(group_num, channels)
        self.gate_threshold = gate_threshold

    def forward(self, x: Tensor) -> Tensor:
        gn_x = self.gn(x)
        importance = (self.gn.weight / self.gn.weight.sum()).view(1, -1, 1, 1)
        weights = torch.sigmoid(gn_x * importance)
        informative = weights > self.gate_threshold
        w1 = torch.where(informative, torch.ones_like(weights), weights)
        w2 = torch.where(informative, torch.zeros_like(weights), weights)
        x1, x2 = w1 * x, w2 * x
        x11, x12 = x1.chunk(2, dim=1)
        x21, x22 = x2.chunk(2, dim=1)
        return torch.cat([x11 + x22, x12 + x21], dim=1)


class CRU(nn.Module):
    def __init__(self, channels: int, alpha: float = 0.5, squeeze_ratio: int = 2, group_size: int = 2,
                 group_kernel_size: int = 3) -> None:
        super().__init__()
        self.up_channels = int(alpha * channels)
        self.low_channels = channels - self.up_channels
        up_sq, low_sq = self.up_channels // squeeze_ratio, self.low_channels // squeeze_ratio
        if min(up_sq, low_sq) < 1 or up_sq % group_size or channels % group_size:
            raise ValueError(f"scconv: channels ({channels}) too small or not divisible for alpha={alpha}, "
                             f"squeeze_ratio={squeeze_ratio}, group_size={group_size}")
        self.squeeze1 = nn.Conv2d(self.up_channels, up_sq, 1, bias=False)
        self.squeeze2 = nn.Conv2d(self.low_channels, low_sq, 1, bias=False)
        self.gwc = nn.Conv2d(up_sq, channels, group_kernel_size, padding=group_kernel_size // 2, groups=group_size)
        self.pwc1 = nn.Conv2d(up_sq, channels, 1, bias=False)
        self.pwc2 = nn.Conv2d(low_sq, channels - low_sq, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        up, low = torch.split(x, [self.up_channels, self.low_channels], dim=1)
        up, low = self.squeeze1(up), self.squeeze2(low)
        y1 = self.gwc(up) + self.pwc1(up)
        y2 = torch.cat([self.pwc2(low), low], dim=1)
        out = torch.cat([y1, y2], dim=1)  # (N, 2C, H, W)
        out = out.mean(dim=(2, 3), keepdim=True).softmax(dim=1) * out
        out1, out2 = out.chunk(2, dim=1)
        return out1 + out2


@register_module("scconv", ModuleCard(
    paper="SCConv: Spatial and Channel Reconstruction Convolution for Feature Redundancy", venue="CVPR",
    year=2023, category="conv", seed_section=40,
    paper_url="https://openaccess.thecvf.com/content/CVPR2023/html/Li_SCConv_Spatial_and_Channel_"
              "Reconstruction_Convolution_for_Feature_Redundancy_CVPR_2023_paper.html",
    constraints="channels even and divisible by group_num (4) and by 2 * squeeze_ratio * group_size / "
                "alpha-split rules (C = 8k works with the defaults)",
    deviations_fixed=(
        "seed does not run (squeeze_radio / gate_treshold keyword mismatches between SCConv, SRU and CRU)",
        "seed gated with hard 0/1 masks times GN(X); the paper keeps the sigmoid weights below / above the "
        "threshold (W1: 1 above, W2: 0 above) and multiplies the input X",
        "seed's custom GroupBatchnorm2d (randn-initialised scale, std + 1e-10) replaced by nn.GroupNorm, "
        "as in the paper",
    ),
    notes="a drop-in for a 3x3 conv that keeps the channel count (stride 1)",
    ref_params=7616, ref_macs=23281664,
))
class ScConv(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1, group_num: int = 4,
                 gate_threshold: float = 0.5, alpha: float = 0.5, squeeze_ratio: int = 2, group_size: int = 2,
                 group_kernel_size: int = 3) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("scconv", channels, out_channels, stride)
        self.stride = 1
        if channels % 2 or channels % group_num:
            raise ValueError(f"scconv: channels ({channels}) must be even and divisible by group_num ({group_num})")
        self.sru = SRU(channels, group_num, gate_threshold)
        self.cru = CRU(channels, alpha, squeeze_ratio, group_size, group_kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.cru(self.sru(x))
