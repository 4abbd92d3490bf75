"""Special operators: plain-PyTorch references, accelerated kernels loaded lazily, and dispatchers."""

from litevision.ops.channel_shuffle import channel_shuffle
from litevision.ops.ska import SKA, ska, ska_decomposed, ska_reference, ska_weight_norm

__all__ = ["SKA", "channel_shuffle", "ska", "ska_decomposed", "ska_reference", "ska_weight_norm"]
