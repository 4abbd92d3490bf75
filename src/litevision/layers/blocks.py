"""Depthwise-separable and inverted-residual (MBConv) blocks shared by the MobileNet family,
EfficientNet and the plug-in module library."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from litevision.layers.conv_norm_act import ConvNormAct
from litevision.layers.drop import DropPath

SELayerFactory = Callable[[int, int], nn.Module]
"""Builds a squeeze-excitation/attention layer: ``factory(block_channels, block_in_channels)``."""


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k x k conv (+BN+act) [-> SE] -> pointwise 1x1 conv (+BN[+act]) (MobileNetV1, MBConv e=1)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        act_layer: str | Callable[..., nn.Module] = "relu",
        pw_act: bool = False,
        se_layer: SELayerFactory | None = None,
        skip: bool = True,
        drop_path_rate: float = 0.0,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.has_skip = skip and stride == 1 and in_chs == out_chs
        self.conv_dw = ConvNormAct(in_chs, in_chs, kernel_size, stride, groups=in_chs, act_layer=act_layer,
                                   bn_eps=bn_eps)
        self.se = se_layer(in_chs, in_chs) if se_layer else nn.Identity()
        self.conv_pw = ConvNormAct(in_chs, out_chs, 1, act_layer=act_layer if pw_act else None, bn_eps=bn_eps)
        self.drop_path = DropPath(drop_path_rate) if self.has_skip and drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_pw(self.se(self.conv_dw(x)))
        return x + self.drop_path(out) if self.has_skip else out


class InvertedResidual(nn.Module):
    """MBConv (MobileNetV2/V3, EfficientNet): 1x1 expand -> k x k depthwise -> [SE] -> 1x1 linear project.

    The expansion conv is omitted when ``mid_chs == in_chs`` (expansion ratio 1), as in the papers.
    The residual connection is used when stride is 1 and the channel count is kept.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        mid_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        act_layer: str | Callable[..., nn.Module] = "relu",
        se_layer: SELayerFactory | None = None,
        skip: bool = True,
        drop_path_rate: float = 0.0,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.has_skip = skip and stride == 1 and in_chs == out_chs
        self.conv_pw = (
            ConvNormAct(in_chs, mid_chs, 1, act_layer=act_layer, bn_eps=bn_eps) if mid_chs != in_chs else nn.Identity()
        )
        self.conv_dw = ConvNormAct(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs, act_layer=act_layer,
                                   bn_eps=bn_eps)
        self.se = se_layer(mid_chs, in_chs) if se_layer else nn.Identity()
        self.conv_pwl = ConvNormAct(mid_chs, out_chs, 1, act_layer=None, bn_eps=bn_eps)
        self.drop_path = DropPath(drop_path_rate) if self.has_skip and drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return x + self.drop_path(out) if self.has_skip else out
