"""Special operators: plain-PyTorch references, accelerated kernels loaded lazily, and dispatchers."""

from litevision.ops.channel_shuffle import channel_shuffle

__all__ = ["channel_shuffle"]
