"""The model registry and factory."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from litevision.models._card import ModelCard
from litevision.models._contract import FeatureExtractor
from litevision.registry import Registry

MODELS: Registry[ModelCard] = Registry("model")


def register_model(name: str, fn: Callable[..., nn.Module], card: ModelCard) -> Callable[..., nn.Module]:
    """Register ``fn(*, num_classes, in_chans, **overrides) -> model`` under ``name``; duplicates raise."""
    return MODELS.register(name, fn, card)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered model names matching an fnmatch ``pattern``."""
    return MODELS.names(pattern)


def get_model_card(name: str) -> ModelCard:
    return MODELS.get(name).meta


def create_model(
    name: str,
    *,
    num_classes: int = 1000,
    in_chans: int | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model.

    ``overrides`` go to the family's explicit constructor (``drop_rate``, ``drop_path_rate``, widths...);
    ``None`` values are dropped so callers can forward optional CLI arguments, and an unknown keyword
    raises ``TypeError``. ``in_chans`` defaults to the card's input channels (3 for images, 1 for a
    hyperspectral cube channel). ``checkpoint_path`` loads weights (ours, torchvision, timm or the official
    layout, auto-detected). ``features_only=True`` returns a :class:`FeatureExtractor` whose forward gives
    the stage outputs selected by ``out_indices``. ``stitch=[{"module": "eca", "where": "stages"}, ...]``
    inserts plug-in modules (see :func:`litevision.modules.stitch.apply_stitch_specs`) after the
    checkpoint is loaded; it travels in ``model.kwargs`` of training configs and weights metadata.
    """
    entry = MODELS.get(name)
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    stitch_specs = kwargs.pop("stitch", None)  # plug-in modules to insert (litevision.modules.stitch)
    in_chans = entry.meta.input_size[0] if in_chans is None else in_chans
    try:
        model = entry.fn(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise TypeError(f"create_model({name!r}): {e}") from None
        raise
    model.card = entry.meta
    model.pretrained_cfg = {**entry.meta.to_dict(), "architecture": name}
    model.model_name = name
    if checkpoint_path is not None:
        from litevision.models._weights import load_checkpoint

        load_checkpoint(model, checkpoint_path)
    if stitch_specs:  # after the (base-model) checkpoint: the inserted modules start fresh
        from litevision.modules.stitch import apply_stitch_specs

        apply_stitch_specs(model, stitch_specs)
    if features_only:
        return FeatureExtractor(model, out_indices)
    if out_indices is not None:
        raise TypeError("out_indices is only meaningful with features_only=True")
    return model
