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


def init_weights(model: nn.Module, linear: str | None = "normal") -> None:
    """torchvision's initialisation for CNNs: kaiming-normal fan-out convs with zero bias, unit BatchNorm.

    ``linear``: ``"normal"`` N(0, 0.01) (MobileNet, ShuffleNet), ``"uniform"`` U(±1/sqrt(out)) (EfficientNet)
    or ``None`` to keep PyTorch's default (ResNet).
    """
    import math

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear is not None:
            if linear == "uniform":
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
            else:
                nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
