"""Squeeze-and-Excitation as a plug-in module (seed 004 section 1)."""

from __future__ import annotations

from litevision.layers.squeeze_excite import SqueezeExcite
from litevision.modules._registry import ModuleCard, register_module


@register_module("se", ModuleCard(
    paper="Squeeze-and-Excitation Networks", venue="CVPR", year=2018, category="channel", seed_section=1,
    constraints="channels * rd_ratio >= 1", paper_url="https://arxiv.org/abs/1709.01507",
    ref_params=580, ref_macs=512,
))
class SEModule(SqueezeExcite):
    """Channel gate: GAP -> FC(C -> C/r) -> ReLU -> FC(C/r -> C) -> sigmoid -> x * gate (r = 16)."""

    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 rd_ratio: float = 1 / 16, rd_channels: int | None = None) -> None:
        if (out_channels or channels) != channels or stride != 1:
            raise ValueError("se is a gate: out_channels must equal channels and stride must be 1")
        super().__init__(channels, rd_ratio=rd_ratio, rd_channels=rd_channels)
        self.out_channels = channels
        self.stride = 1
