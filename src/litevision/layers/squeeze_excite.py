"""Squeeze-and-Excitation (Hu et al., CVPR 2018)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from litevision.layers.helpers import create_act, make_divisible


class SqueezeExcite(nn.Module):
    """Global average pool -> FC (C -> C*rd_ratio) -> act -> FC -> gate -> rescale the input.

    FCs are 1x1 convolutions with bias (identical to the paper's fully connected layers on pooled
    features). MobileNetV3 uses ``gate_layer="hard_sigmoid"`` and ``rd_divisor=8``.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        rd_divisor: int = 1,
        act_layer: str | Callable[..., nn.Module] = "relu",
        gate_layer: str | Callable[..., nn.Module] = "sigmoid",
    ) -> None:
        super().__init__()
        if rd_channels is None:
            rd_channels = make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.0) if rd_divisor > 1 \
                else max(1, int(channels * rd_ratio))
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act = create_act(act_layer)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = create_act(gate_layer, inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(self.act(self.fc1(s)))
        return x * self.gate(s)
