"""From a config to ready objects: the dataset bundle, preprocessing, datasets with transforms, the model.

Also :func:`load_trained_model`: rebuild a model from a litevision weights file (its safetensors
metadata names the model, classes and preprocessing) or a run folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from litevision.data.registry import DataBundle, build_dataset
from litevision.data.transforms import AugmentConfig, build_eval_transform, build_train_transform, resolve_normalization
from litevision.errors import UserError
from litevision.models._peers import DataConfig, parse_model_spec, resolve_data_config

WEIGHTS_FORMAT = "litevision-weights-1"


@dataclass
class Preprocess:
    """Everything about the input a trained model expects; stored in every weights file it produces."""

    input_size: tuple[int, ...]  # (C, H, W); a tensor dataset's sample shape
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float
    interpolation: str
    norm_source: str = "model"

    def data_config(self) -> DataConfig:
        return DataConfig(self.input_size, self.mean, self.std, self.interpolation, self.crop_pct)


def load_bundle(name: str, options: dict[str, Any] | None = None, *, root: str | None = None,
                skip_bad: bool = False) -> DataBundle:
    """A registered dataset, or ``name`` as a folder path (ImageFolder layout)."""
    from litevision.data.registry import DATASETS

    opts = dict(options or {})
    if name not in DATASETS and (Path(name).is_dir() or os.sep in name):
        opts.setdefault("root", name)
        name = "folder"
    if root is not None:
        opts["root"] = root
    if name == "folder":
        opts.setdefault("skip_bad", skip_bad)
    try:
        return build_dataset(name, **opts)
    except TypeError as e:
        if "unexpected keyword" in str(e) or "required" in str(e):
            raise UserError(f"dataset {name!r}: {e} (check data.options / data.root)") from None
        raise


def resolve_preprocess(
    model_name: str,
    bundle: DataBundle,
    *,
    input_size: int | None = None,
    in_chans: int | None = None,
    crop_pct: float | None = None,
    interpolation: str | None = None,
    norm: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pretrained: bool = False,
) -> Preprocess:
    """Combine the model card (size, crop_pct, interpolation, mean/std) with the dataset and the config."""
    chans = in_chans or bundle.in_chans
    card = resolve_data_config(model_name)
    if bundle.kind == "tensor":  # ready tensors (hyperspectral patches): no resizing or normalization here
        shape = tuple(int(v) for v in bundle.train[0][0].shape)
        return Preprocess(shape, (0.0,) * chans, (1.0,) * chans, 1.0, card.interpolation, "none")
    size = input_size or card.input_size[1]
    m, s, source = resolve_normalization(card.mean, card.std, bundle.extra, chans, norm, pretrained)
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise UserError("set both data.mean and data.std, or neither")
        if len(mean) != chans or len(std) != chans:
            raise UserError(f"data.mean/std need {chans} values (one per input channel)")
        m, s, source = tuple(float(v) for v in mean), tuple(float(v) for v in std), "config"
    return Preprocess((chans, size, size), m, s, crop_pct if crop_pct is not None else card.crop_pct,
                      interpolation or card.interpolation, source)


def split_dataset(bundle: DataBundle, split: str) -> Dataset:
    if split == "train":
        return bundle.train
    if split == "test":
        return bundle.test
    if split == "val":
        if bundle.val is None:
            raise UserError(f"{bundle.description or 'this dataset'} has no val split (use test)")
        return bundle.val
    raise UserError(f"unknown split {split!r}: use train, val or test")


def build_train_dataset(bundle: DataBundle, pre: Preprocess, aug: AugmentConfig, *, seed: int) -> Dataset:
    from litevision.data.loader import TransformedDataset

    transform = None if bundle.kind == "tensor" else build_train_transform(pre.data_config(), aug)
    return TransformedDataset(bundle.train, transform, seed=seed)


def build_eval_dataset(bundle: DataBundle, pre: Preprocess | DataConfig, split: str = "test") -> Dataset:
    """The ``split`` of ``bundle`` with the evaluation transform (resize, center crop, normalize)."""
    from litevision.data.loader import TransformedDataset

    cfg = pre.data_config() if isinstance(pre, Preprocess) else pre
    transform = None if bundle.kind == "tensor" else build_eval_transform(cfg)
    return TransformedDataset(split_dataset(bundle, split), transform, seed=None)


def build_model(
    name: str,
    *,
    num_classes: int,
    in_chans: int,
    kwargs: dict[str, Any] | None = None,
    checkpoint: str | None = None,
    checkpoint_num_classes: int | None = None,
) -> nn.Module:
    """A registered model (with constructor ``kwargs``) or a ``timm:`` / ``tv:`` peer; optionally initial
    weights from ``checkpoint`` (built with ``checkpoint_num_classes`` outputs, then the head is reset)."""
    from litevision.models import create_model
    from litevision.models._peers import create_any_model

    kwargs = dict(kwargs or {})
    spec = parse_model_spec(name)
    build_classes = checkpoint_num_classes or num_classes
    try:
        if spec.source == "litevision":
            model = create_model(spec.name, num_classes=build_classes, in_chans=in_chans, checkpoint_path=checkpoint,
                                 **kwargs)
        else:
            if kwargs:
                raise UserError(f"model.kwargs are only supported for litevision models, not {name}")
            model = create_any_model(name, num_classes=build_classes, in_chans=in_chans, checkpoint_path=checkpoint)
    except TypeError as e:
        raise UserError(f"model {name}: {e} (check model.kwargs)") from None
    if build_classes != num_classes:
        if not hasattr(model, "reset_classifier"):
            raise UserError(f"{name} has no reset_classifier(); cannot change its head to {num_classes} classes")
        model.reset_classifier(num_classes)
    return model


def weights_metadata(model_name: str, model_kwargs: dict[str, Any], num_classes: int, class_names: list[str],
                     pre: Preprocess, **extra: Any) -> dict[str, Any]:
    """What :func:`load_trained_model` needs to rebuild the model and its preprocessing."""
    return {"format": WEIGHTS_FORMAT, "model": model_name, "model_kwargs": model_kwargs, "num_classes": num_classes,
            "class_names": class_names, "input_size": list(pre.input_size), "mean": list(pre.mean),
            "std": list(pre.std), "crop_pct": pre.crop_pct, "interpolation": pre.interpolation, **extra}


def resolve_weights_path(path: str | os.PathLike[str]) -> Path:
    """A weights file, or a run folder (its ``best.safetensors``, else ``last.safetensors``)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (p / name).is_file():
                return p / name
        raise UserError(f"{p}: no best.safetensors or last.safetensors (is it a litevision run folder?)")
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    return p


def load_trained_model(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved by ``litevision train`` (a weights file or a run folder): (model, metadata).

    The metadata holds ``model``, ``model_kwargs``, ``num_classes``, ``class_names``, ``input_size``,
    ``mean``, ``std``, ``crop_pct``, ``interpolation``, ``dataset``, and :func:`preprocess_from_metadata`
    turns it back into a :class:`Preprocess`.
    """
    from litevision.engine.checkpoint import load_weights
    from litevision.models import load_checkpoint

    p = resolve_weights_path(path)
    if p.suffix != ".safetensors":
        raise UserError(f"{p}: not a litevision weights file; pass --model NAME to load foreign weights")
    state, meta = load_weights(p)
    if meta.get("format") != WEIGHTS_FORMAT:
        raise UserError(f"{p}: has no litevision metadata; pass --model NAME (and --num-classes) to load it")
    model = build_model(meta["model"], num_classes=int(meta["num_classes"]), in_chans=int(meta["input_size"][0]),
                        kwargs=meta.get("model_kwargs") or {})
    load_checkpoint(model, state)
    model.eval()
    return model, meta


def preprocess_from_metadata(meta: dict[str, Any]) -> Preprocess:
    return Preprocess(tuple(meta["input_size"]), tuple(meta["mean"]), tuple(meta["std"]), float(meta["crop_pct"]),
                      str(meta["interpolation"]), "checkpoint")
