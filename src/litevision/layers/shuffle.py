"""Channel shuffle as a layer."""

from __future__ import annotations

from torch import Tensor, nn

from litevision.ops.channel_shuffle import channel_shuffle


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
