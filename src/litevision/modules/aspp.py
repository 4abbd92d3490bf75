"""Atrous Spatial Pyramid Pooling of DeepLabv3 (Chen et al., arXiv 1706.05587), seed 004 section 27.

Five parallel branches on the same input: a 1x1 conv, three 3x3 atrous convs (rates 6, 12, 18 at
output stride 16) and image-level pooling (GAP -> 1x1 conv -> BN -> ReLU -> broadcast back), each with
BatchNorm + ReLU; concatenated and fused by a 1x1 conv + BN + ReLU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.layers.conv_norm_act import ConvNormAct
from litevision.modules._registry import ModuleCard, register_module


class ImagePooling(nn.Module):
    """GAP -> 1x1 conv -> BN -> ReLU, broadcast to H x W.

    BN is applied after broadcasting: its batch statistics are the same as on the pooled (N, C, 1, 1)
    map, but it no longer fails at batch size 1 in training (torchvision's ASPPPooling does).
    """

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.conv(x.mean(dim=(2, 3), keepdim=True))  # (N, C', 1, 1)
        return self.act(self.bn(pooled.expand(-1, -1, x.shape[2], x.shape[3])))


@register_module("aspp", ModuleCard(
    paper="Rethinking Atrous Convolution for Semantic Image Segmentation", venue="arXiv", year=2017,
    category="spatial", seed_section=27, paper_url="https://arxiv.org/abs/1706.05587",
    constraints="none; out_channels selectable (default: channels); branch width = out_channels",
    deviations_fixed=(
        "seed fixed 256 output channels; here branch/out width follow out_channels (default = input C)",
        "seed's bilinear upsampling of a 1x1 map replaced by an exact broadcast (same values, exports at "
        "any size)",
        "image-pooling BN applied after the broadcast so batch-1 training works (same statistics)",
        "Dropout(0.5) after the projection (torchvision's addition, not in the paper) is optional, "
        "default 0",
    ),
    ref_params=140032, ref_macs=423890944,
))
class ASPP(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 rates: tuple[int, ...] = (6, 12, 18), drop_rate: float = 0.0) -> None:
        super().__init__()
        if stride != 1:
            raise ValueError("aspp keeps the resolution: stride must be 1")
        out_channels = out_channels or channels
        self.out_channels = out_channels
        self.stride = 1
        branches: list[nn.Module] = [ConvNormAct(channels, out_channels, 1)]
        branches += [ConvNormAct(channels, out_channels, 3, dilation=r) for r in rates]
        branches.append(ImagePooling(channels, out_channels))
        self.branches = nn.ModuleList(branches)
        self.project = ConvNormAct(len(branches) * out_channels, out_channels, 1)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.project(torch.cat([b(x) for b in self.branches], dim=1)))
