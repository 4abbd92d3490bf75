"""Peers: timm and torchvision models built behind the same interface as ours.

A *model spec* is a registered litevision name (``lcnet_t``), ``timm:<name>`` or ``tv:<name>``
(torchvision). :func:`create_any_model` builds any of them with random weights (nothing is downloaded)
and :func:`resolve_data_config` gives the :class:`DataConfig` (input size, normalization) that goes with it,
so benchmark, export and comparison code measures ours and the peers with the same code paths.

timm and torchvision are imported only when a peer is asked for.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from litevision.errors import UserError
from litevision.models._builder import create_model, get_model_card
from litevision.models._card import DataConfig
from litevision.models._weights import load_checkpoint

PEER_PREFIXES = ("timm", "tv")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: ``source`` is ``"litevision"``, ``"timm"`` or ``"tv"``."""

    source: str
    name: str

    def __str__(self) -> str:
        return self.name if self.source == "litevision" else f"{self.source}:{self.name}"


def parse_model_spec(spec: str) -> ModelSpec:
    """Split ``timm:<name>`` / ``tv:<name>``; anything else is a litevision name (checked on use)."""
    prefix, sep, name = spec.partition(":")
    if not sep:
        return ModelSpec("litevision", spec)
    if prefix not in PEER_PREFIXES or not name:
        raise UserError(f"bad model spec {spec!r}: use a litevision name, timm:<name> or tv:<name>")
    return ModelSpec(prefix, name)


def create_any_model(
    spec: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_num_classes: int | None = None,
    **kwargs: object,
) -> nn.Module:
    """Build a litevision model or a timm / torchvision peer with random weights (plus ``checkpoint_path``).

    ``kwargs`` go to :func:`~litevision.models.create_model` (litevision models only). torchvision models have no
    ``in_chans`` argument: for ``in_chans != 3`` their first convolution is replaced by one with ``in_chans``
    inputs (weights averaged over the RGB inputs, as timm does). ``in_chans`` defaults to the model card's
    (ours) or 3 (peers). ``checkpoint_num_classes``: the checkpoint's class count when it differs from
    ``num_classes`` (fine-tuning): the model is built with it, loaded, then its classifier reset.
    ``num_classes`` defaults to the model card's (ours) or 1000 (peers).
    """
    parsed = parse_model_spec(spec)
    if num_classes is None and parsed.source != "litevision":
        num_classes = 1000  # ours default to the classes of their card's figures
    build_classes = checkpoint_num_classes or num_classes
    if parsed.source == "litevision":
        model = create_model(parsed.name, num_classes=build_classes, in_chans=in_chans,
                             checkpoint_path=checkpoint_path, **kwargs)
    else:
        if kwargs:
            raise TypeError(f"{spec}: constructor arguments ({', '.join(kwargs)}) are only supported for litevision "
                            "models")
        in_chans = 3 if in_chans is None else in_chans
        create = _create_timm if parsed.source == "timm" else _create_tv
        model = create(parsed.name, build_classes, in_chans)
        model.model_name = str(parsed)
        if checkpoint_path is not None:
            load_checkpoint(model, checkpoint_path)
    if num_classes is not None and build_classes != num_classes:
        if not hasattr(model, "reset_classifier"):
            raise UserError(f"{spec} has no reset_classifier(); cannot change its head to {num_classes} classes")
        model.reset_classifier(num_classes)
    return model


def resolve_data_config(
    spec: str, input_size: tuple[int, ...] | None = None, *, in_chans: int | None = None
) -> DataConfig:
    """The model's default input size and normalization.

    ``input_size`` overrides the size: (H, W) keeps the default channel count, (C, H, W) sets all three;
    ``in_chans`` overrides the channel count (e.g. 1 for grey images). Normalization statistics are
    averaged over the RGB channels when the channel count is not 3.
    """
    parsed = parse_model_spec(spec)
    if parsed.source == "litevision":
        cfg = get_model_card(parsed.name).data_config
    elif parsed.source == "timm":
        import timm

        _check_timm_name(parsed.name)
        pcfg = timm.models.get_pretrained_cfg(parsed.name)
        cfg = DataConfig() if pcfg is None else DataConfig(
            input_size=pcfg.input_size, mean=pcfg.mean, std=pcfg.std, interpolation=pcfg.interpolation or "bilinear",
            crop_pct=pcfg.crop_pct or 0.875)
    else:
        _tv_builder(parsed.name)
        cfg = DataConfig()
    size = _merge_size(cfg.input_size, input_size, in_chans)
    mean, std = cfg.mean, cfg.std
    if len(mean) != size[0]:  # grey inputs: one channel with the mean of the RGB statistics
        mean = (sum(mean) / len(mean),) * size[0]
        std = (sum(std) / len(std),) * size[0]
    return cfg.replace(input_size=size, mean=mean, std=std)


def _merge_size(default: tuple[int, ...], input_size: tuple[int, ...] | None,
                in_chans: int | None) -> tuple[int, ...]:
    if input_size is None:
        size = tuple(default)
    elif len(input_size) == 2:
        size = (default[0], *input_size)
    elif len(input_size) == 3:
        size = tuple(input_size)
        if in_chans is not None and in_chans != size[0]:
            raise UserError(f"in_chans {in_chans} contradicts input size {tuple(input_size)}")
    else:
        raise UserError(f"input size must be (H, W) or (C, H, W), got {tuple(input_size)}")
    if in_chans is not None:
        size = (in_chans, *size[1:])
    if min(size) < 1:
        raise UserError(f"input size must be positive, got {size}")
    return size  # type: ignore[return-value]


def _check_timm_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join('timm:' + c for c in close)}?" if close else ""
        raise UserError(f"unknown timm model {name!r}.{hint}")


def _create_timm(name: str, num_classes: int, in_chans: int) -> nn.Module:
    import timm

    _check_timm_name(name)
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)


def _tv_builder(name: str) -> Callable[..., nn.Module]:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join('tv:' + c for c in close)}?" if close else ""
        raise UserError(f"unknown torchvision classification model {name!r}.{hint}")
    return torchvision.models.get_model_builder(name)


def _create_tv(name: str, num_classes: int, in_chans: int) -> nn.Module:
    model = _tv_builder(name)(weights=None, num_classes=num_classes)
    if in_chans != 3:
        _adapt_first_conv(model, in_chans)
    return model


@torch.no_grad()
def _adapt_first_conv(model: nn.Module, in_chans: int) -> None:
    """Swap the first 3-input convolution for an ``in_chans``-input one (RGB weights averaged, repeated)."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                conv = nn.Conv2d(in_chans, child.out_channels, child.kernel_size, child.stride, child.padding,
                                 child.dilation, child.groups, child.bias is not None)
                conv.weight.copy_(child.weight.mean(dim=1, keepdim=True).expand_as(conv.weight) * 3 / in_chans)
                if child.bias is not None:
                    conv.bias.copy_(child.bias)
                setattr(parent, child_name, conv)
                return
    raise UserError(f"cannot adapt {type(model).__name__} to {in_chans} input channels: no 3-channel conv found")
