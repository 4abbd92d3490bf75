"""The MACs-formula registry: special operators say what one call costs, :func:`litevision.count_complexity`
reads it. Kept free of other litevision imports so the lowest layer (``ops``) can register its formulas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MACS_FORMULAS: dict[Any, Callable[..., int]] = {}


def register_macs_formula(op: Any, formula: Callable[..., int] | None = None) -> Any:
    """Register ``formula(*args, out_shape=..., **kwargs) -> MACs`` for the operator packet ``op``.

    Tensor arguments arrive as their shapes (``torch.Size``), other arguments as they are. Usable as a
    decorator: ``@register_macs_formula(torch.ops.mylib.myop)``.
    """
    if hasattr(op, "_overloadpacket"):
        op = op._overloadpacket

    def deco(fn: Callable[..., int]) -> Callable[..., int]:
        _MACS_FORMULAS[op] = fn
        return fn

    return deco(formula) if formula is not None else deco


def macs_formulas() -> dict[Any, Callable[..., int]]:
    """A copy of the registered formulas, keyed by operator packet."""
    return dict(_MACS_FORMULAS)
