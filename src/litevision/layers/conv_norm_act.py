"""Conv + BatchNorm + activation, the building block of every convolutional model here."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from litevision.layers.fuse import fuse_conv_bn
from litevision.layers.helpers import create_act


class ConvNormAct(nn.Module):
    """``act(bn(conv(x)))``. Submodule names (``conv``, ``bn``, ``act``) are checkpoint keys.

    ``fuse()`` folds the BatchNorm into the convolution for deployment (one conv + act remain).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm: bool = True,
        act_layer: str | Callable[..., nn.Module] | None = "relu",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if padding is None:
            k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
            padding = tuple(((kk - 1) // 2) * dilation for kk in k)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps, momentum=bn_momentum) if norm else nn.Identity()
        self.act = create_act(act_layer)

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> nn.Module:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = nn.Identity()
        return self
