"""The model registry, the factory and the one registration helper every family uses.

A family file ends with a ``VARIANTS`` table of keyword :class:`Variant` rows and one call of
:func:`register_family`, which registers each variant with its model card. Keyword arguments of
:func:`create_model` go to the family's constructor, or replace a field of the variant's config dataclass
(``create_model("lcnet_t", mlp_ratio=2.0)``); anything else raises ``TypeError`` naming both.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from litevision.errors import UserError
from litevision.models._card import DataConfig, ModelCard, Paper, PaperFigures
from litevision.models._contract import FeatureExtractor
from litevision.models._structure import apply_structure, checkpoint_structure
from litevision.models._weights import load_checkpoint
from litevision.modules.stitch import apply_stitch_specs
from litevision.registry import Registry

MODELS: Registry[ModelCard] = Registry("model")


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One registered variant: its config and the paper's figures, plus what differs from the family card.

    ``model_kwargs`` are fixed constructor arguments of this variant (e.g. ``distillation=True``);
    ``paper`` / ``data_config`` / ``notes`` / ``extra`` override or extend the family's.
    """

    cfg: Any
    figures: PaperFigures = PaperFigures()
    reference: tuple[str, ...] = ()
    paper: Paper | None = None
    data_config: DataConfig | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def register_model(name: str, fn: Callable[..., nn.Module], card: ModelCard) -> Callable[..., nn.Module]:
    """Register ``fn(*, num_classes, in_chans, **overrides) -> model`` under ``name``; duplicates raise."""
    return MODELS.register(name, fn, card)


def register_family(
    family: str,
    model_cls: Callable[..., nn.Module],
    variants: Mapping[str, Variant],
    *,
    paper: Paper,
    task: str = "classification",
    notes: str = "",
    data_config: DataConfig | None = None,
    export_dynamic_hw: bool = True,
    runtime_limits: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Register every variant of a family: ``model_cls(cfg, *, num_classes, in_chans, **kwargs)`` builds it."""
    for name, v in variants.items():
        card = ModelCard(
            family=family, task=task, paper=v.paper or paper, figures=v.figures,
            data_config=v.data_config or data_config or DataConfig(), reference=tuple(v.reference),
            export_dynamic_hw=export_dynamic_hw, runtime_limits=dict(runtime_limits or {}),
            notes=" ".join(filter(None, (notes, v.notes))), extra={**(extra or {}), **v.extra},
        )
        register_model(name, _builder(family, model_cls, v.cfg, dict(v.model_kwargs)), card)


def _builder(family: str, model_cls: Callable[..., nn.Module], cfg: Any,
             fixed: dict[str, Any]) -> Callable[..., nn.Module]:
    params = inspect.signature(model_cls).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    cfg_fields = {f.name for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else set()

    def build(*, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> nn.Module:
        ctor = {k: v for k, v in kwargs.items() if k in params or (accepts_any and k not in cfg_fields)}
        overrides = {k: v for k, v in kwargs.items() if k not in ctor}
        unknown = sorted(set(overrides) - cfg_fields)
        if unknown:
            ctor_names = [p for p in params if p not in ("cfg", "self")]
            raise TypeError(f"{family} got an unexpected keyword argument {unknown[0]!r}; constructor arguments: "
                            f"{', '.join(ctor_names)}; config fields: {', '.join(sorted(cfg_fields)) or 'none'}")
        variant_cfg = dataclasses.replace(cfg, **{k: tuple(v) if isinstance(v, list) else v
                                                  for k, v in overrides.items()}) if overrides else cfg
        return model_cls(variant_cfg, num_classes=num_classes, in_chans=in_chans, **fixed, **ctor)

    return build


def list_models(pattern: str = "*", *, family: str | None = None, task: str | None = None) -> list[str]:
    """Sorted registered model names matching an fnmatch ``pattern`` (and ``family`` / ``task``, when given:
    ``task="detection"`` lists the detectors, ``task="classification"`` the classifiers)."""
    names = MODELS.names(pattern)
    return [n for n in names if (family is None or MODELS.get(n).meta.family == family)
            and (task is None or MODELS.get(n).meta.task == task)]


def get_model_card(name: str) -> ModelCard:
    return MODELS.get(name).meta


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model.

    ``overrides`` go to the family's explicit constructor (``drop_rate``, ``drop_path_rate``...) or replace
    fields of the variant's config (widths, depths...); ``None`` values are dropped so callers can forward
    optional CLI arguments, and an unknown keyword raises ``TypeError``. ``in_chans`` defaults to the card's
    input channels (3 for images, 1 for a hyperspectral cube channel), ``num_classes`` the classes of the
    paper's figures (1000 for ImageNet models, 90 for COCO detectors, 16 for Indian Pines).
    ``checkpoint_path`` loads weights (ours, torchvision, timm or the official layout, auto-detected).
    ``features_only=True`` returns a :class:`FeatureExtractor` whose forward gives the stage outputs selected
    by ``out_indices``.
    ``stitch=[{"module": "eca", "where": "stages"}, ...]`` inserts plug-in modules (see
    :func:`litevision.modules.stitch.apply_stitch_specs`) after the checkpoint is loaded; it travels in
    ``model.kwargs`` of training configs and weights metadata. ``structure`` (a pruned network's per-layer widths,
    :func:`litevision.models.model_structure`) reshapes the model before ``checkpoint_path`` is loaded; a
    weights file whose metadata holds a ``"structure"`` applies its own. With a structure the plug-in modules of
    ``stitch`` are inserted first (the structure and the checkpoint cover them).
    """
    entry = MODELS.get(name)
    for arg, value, low in (("num_classes", num_classes, 0), ("in_chans", in_chans, 1)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            raise TypeError(f"create_model({name!r}): {arg} must be an int >= {low}, got {value!r}")
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    stitch_specs = kwargs.pop("stitch", None)  # plug-in modules to insert (litevision.modules.stitch)
    structure = kwargs.pop("structure", None)  # a pruned network's widths (litevision.compress)
    if structure is None and checkpoint_path is not None:
        structure = checkpoint_structure(checkpoint_path)
    in_chans = entry.meta.input_size[0] if in_chans is None else in_chans
    if num_classes is None:
        num_classes = entry.meta.extra.get("paper_num_classes", 1000)
    try:
        model = entry.fn(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise TypeError(f"create_model({name!r}): {e}") from None
        raise
    model.card = entry.meta
    model.pretrained_cfg = {**entry.meta.to_dict(), "architecture": name}
    model.model_name = name
    if structure is not None:  # stitched modules first: the structure and the checkpoint cover them
        if stitch_specs:
            apply_stitch_specs(model, stitch_specs)
        try:
            apply_structure(model, structure)
        except ValueError as e:
            raise UserError(f"create_model({name!r}): {e}") from None
        if checkpoint_path is not None:
            load_checkpoint(model, checkpoint_path)
        stitch_specs = None
    elif checkpoint_path is not None:
        load_checkpoint(model, checkpoint_path)
    if stitch_specs:  # after the (base-model) checkpoint: the inserted modules start fresh
        apply_stitch_specs(model, stitch_specs)
    if features_only:
        return FeatureExtractor(model, out_indices)
    if out_indices is not None:
        raise TypeError("out_indices is only meaningful with features_only=True")
    return model
