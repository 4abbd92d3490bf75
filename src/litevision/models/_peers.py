"""Peers: timm and torchvision models built behind the same interface as ours.

A *model spec* is a registered litevision name (``lcnet_t``), ``timm:<name>`` or ``tv:<name>``
(torchvision). :func:`create_any_model` builds any of them with random weights (nothing is downloaded)
and :func:`resolve_data_config` gives the input size and normalization that go with it, so benchmark,
export and comparison code measures ours and the peers with the same code paths.

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
from litevision.models._card import IMAGENET_MEAN, IMAGENET_STD

PEER_PREFIXES = ("timm", "tv")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: ``source`` is ``"litevision"``, ``"timm"`` or ``"tv"``."""

    source: str
    name: str

    def __str__(self) -> str:
        return self.name if self.source == "litevision" else f"{self.source}:{self.name}"


@dataclass(frozen=True)
class DataConfig:
    """What a model expects as input: ``input_size`` (C, H, W) and the normalization of its training."""

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 0.875


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
    num_classes: int = 1000,
    in_chans: int = 3,
    checkpoint_path: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Build a litevision model or a timm / torchvision peer with random weights (plus ``checkpoint_path``).

    torchvision models have no ``in_chans`` argument: for ``in_chans != 3`` their first convolution is
    replaced by one with ``in_chans`` inputs (weights averaged over the RGB inputs, as timm does).
    """
    parsed = parse_model_spec(spec)
    if parsed.source == "litevision":
        return create_model(parsed.name, num_classes=num_classes, in_chans=in_chans, checkpoint_path=checkpoint_path)
    model = _create_timm(parsed.name, num_classes, in_chans) if parsed.source == "timm" else _create_tv(
        parsed.name, num_classes, in_chans
    )
    model.model_name = str(parsed)
    if checkpoint_path is not None:
        from litevision.models._weights import load_checkpoint

        load_checkpoint(model, checkpoint_path)
    return model


def resolve_data_config(spec: str, input_size: tuple[int, int, int] | None = None) -> DataConfig:
    """The model's default input size and normalization; ``input_size`` (C, H, W) overrides the size."""
    parsed = parse_model_spec(spec)
    if parsed.source == "litevision":
        card = get_model_card(parsed.name)
        cfg = DataConfig(tuple(card.input_size), tuple(card.mean), tuple(card.std), card.interpolation,
                         card.crop_pct)
    elif parsed.source == "timm":
        import timm

        _check_timm_name(parsed.name)
        pcfg = timm.models.get_pretrained_cfg(parsed.name)
        if pcfg is None:
            cfg = DataConfig((3, 224, 224), IMAGENET_MEAN, IMAGENET_STD)
        else:
            cfg = DataConfig(tuple(pcfg.input_size), tuple(pcfg.mean), tuple(pcfg.std), pcfg.interpolation or
                             "bilinear", pcfg.crop_pct or 0.875)
    else:
        _tv_builder(parsed.name)
        cfg = DataConfig((3, 224, 224), IMAGENET_MEAN, IMAGENET_STD)
    if input_size is not None:
        cfg = DataConfig(tuple(input_size), cfg.mean, cfg.std, cfg.interpolation, cfg.crop_pct)
    if len(cfg.mean) != cfg.input_size[0]:  # e.g. grey inputs: one channel, the mean of the RGB statistics
        n = cfg.input_size[0]
        mean, std = sum(cfg.mean) / len(cfg.mean), sum(cfg.std) / len(cfg.std)
        cfg = DataConfig(cfg.input_size, (mean,) * n, (std,) * n, cfg.interpolation, cfg.crop_pct)
    return cfg


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
