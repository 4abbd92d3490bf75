"""(Atrous) depthwise-separable convolution as used by DeepLabv3+ (Chen et al., "Encoder-Decoder with
Atrous Separable Convolution for Semantic Image Segmentation", ECCV 2018, arXiv 1802.02611), seed 004
section 45.

A k x k depthwise convolution (optionally dilated: "atrous separable convolution") + BN + ReLU, then a
1x1 point-wise convolution + BN + ReLU. The factorisation itself comes from Xception / MobileNets; the
seed's section cites DeepLab.
"""

from __future__ import annotations

from torch import Tensor, nn

from litevision.layers.conv_norm_act import ConvNormAct
from litevision.modules._registry import ModuleCard, register_module


@register_module("depthwise_separable_conv", ModuleCard(
    paper="Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation",
    venue="ECCV", year=2018, category="conv", seed_section=45, paper_url="https://arxiv.org/abs/1802.02611",
    constraints="none; out_channels and stride selectable",
    deviations_fixed=(
        "seed used LeakyReLU(0.1); DeepLabv3+ (and Xception / MobileNet) use BN + ReLU after both the "
        "depthwise and the point-wise convolution",
        "seed's convolutions had biases before BatchNorm (redundant); removed",
    ),
    notes="blocks are litevision ConvNormAct layers, so fuse() folds their BatchNorms for deployment",
    ref_params=4928, ref_macs=14651392,
))
class DepthwiseSeparableConvModule(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1, kernel_size: int = 3,
                 dilation: int = 1, act_layer: str = "relu") -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.out_channels = out_channels
        self.stride = stride
        self.depthwise = ConvNormAct(channels, channels, kernel_size, stride, dilation=dilation, groups=channels,
                                     act_layer=act_layer)
        self.pointwise = ConvNormAct(channels, out_channels, 1, act_layer=act_layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))
