"""Registry and contract of the plug-in modules (seed 004).

Contract: ``create_module(name, channels, **kwargs)`` returns an ``nn.Module`` taking (N, C, H, W) and
returning (N, out_channels, H / stride, W / stride) in the same dtype and on the same device. The
constructor is ``(channels, *, out_channels=None, stride=1, ...)``; ``out_channels`` and ``stride``
are attributes of the instance. Modules are shape-preserving by default, accept any H x W at or above
``card.min_size`` (non-square and odd included), never modify their input, and never mix samples of a
batch. Token (N, L, C), channels-last and time-series modules are wrapped in adapters (see
``modules/_adapters.py``) and say so in ``card.adapter``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from torch import nn

from litevision.registry import Registry

Category = Literal["channel", "spatial", "hybrid", "token_mixer", "conv"]
CATEGORIES: tuple[str, ...] = ("channel", "spatial", "hybrid", "token_mixer", "conv")
Adapter = Literal["token", "channels_last", "time_series"]
ADAPTERS: tuple[str, ...] = ("token", "channels_last", "time_series")
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript", "torch.export")

# Reference shape of the measured ``ref_params`` / ``ref_macs`` and of ``litevision modules``: one
# (64, 56, 56) feature map, the size of a ResNet stage-1 output.
REF_CHANNELS = 64
REF_SIZE = (56, 56)


@dataclass(frozen=True)
class ModuleCard:
    """Metadata of a plug-in module.

    ``min_size``: smallest H and W accepted. ``divisor``: H and W must be multiples of it (window
    attention); the module raises a clear ``ValueError`` otherwise. ``dynamic_size``: one exported graph
    works at any input size (else the ONNX export is valid at the export size only).
    ``deviations_fixed``: where the seed code deviated from the paper and what we do instead.
    ``category``: ``channel`` / ``spatial`` / ``hybrid`` gates, ``token_mixer`` (attention or MLP mixing
    positions), ``conv`` (convolution replacement). ``adapter``: ``token`` (the paper's module works on
    (N, L, C) tokens), ``channels_last`` ((N, H, W, C)) or ``time_series`` ((N, C, T) sequences: each image
    row is one sequence), see ``modules/_adapters.py``; ``None`` for native NCHW modules.
    ``export``: formats checked by the contract test (``onnx``, ``torchscript``, ``torch.export``).
    ``ref_params`` / ``ref_macs``: measured for ``create_module(name, 64)`` on one 64x56x56 map
    (``litevision modules`` prints them; the metadata test checks they still match the code).
    ``paper_url``: arXiv / proceedings link.
    """

    paper: str
    venue: str
    year: int
    category: Category
    seed_section: int
    constraints: str = "none"
    min_size: int = 1
    divisor: int = 1
    dynamic_size: bool = True
    export: tuple[str, ...] = ("onnx", "torchscript")
    adapter: str | None = None
    deviations_fixed: tuple[str, ...] = ()
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    paper_url: str = ""
    ref_params: int | None = None
    ref_macs: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MODULES: Registry[ModuleCard] = Registry("module", "litevision modules")


def register_module(name: str, card: ModuleCard) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class/function decorator: ``@register_module("se", ModuleCard(...))``; duplicates raise."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODULES.register(name, fn, card)
        return fn

    return deco


def check_shape_preserving(name: str, channels: int, out_channels: int | None, stride: int) -> None:
    """Gates and token mixers keep the input shape: reject other ``out_channels`` / ``stride`` clearly."""
    if (out_channels or channels) != channels or stride != 1:
        raise ValueError(f"{name} preserves the input shape: out_channels must equal channels ({channels}) "
                         f"and stride must be 1 (got out_channels={out_channels}, stride={stride})")


def list_modules(pattern: str = "*") -> list[str]:
    return MODULES.names(pattern)


def get_module_card(name: str) -> ModuleCard:
    return MODULES.get(name).meta


def create_module(name: str, channels: int, **kwargs: Any) -> nn.Module:
    """Build plug-in module ``name`` for ``channels`` input channels; unknown kwargs raise ``TypeError``."""
    entry = MODULES.get(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        module = entry.fn(channels, **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise TypeError(f"create_module({name!r}): {e}") from None
        raise
    module.card = entry.meta
    module.module_name = name
    return module
