"""Small helpers shared by layers, modules and models."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going below ``round_limit * value``.

    This is the rule of the MobileNet/EfficientNet papers' reference code (timm, torchvision agree).
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


_ACTS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hard_swish": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def get_act_layer(act: str | Callable[..., nn.Module] | None) -> Callable[..., nn.Module]:
    """Resolve an activation given by name or class; ``None`` means no activation."""
    if act is None:
        return nn.Identity
    if isinstance(act, str):
        try:
            return _ACTS[act]
        except KeyError:
            raise ValueError(f"unknown activation {act!r}; choose one of {sorted(_ACTS)}") from None
    return act


def create_act(act: str | Callable[..., nn.Module] | None, inplace: bool = True) -> nn.Module:
    layer = get_act_layer(act)
    if layer in (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU):
        return layer(inplace=inplace)
    return layer()
