"""From a dataset name and a model to ready datasets: the bundle, the resolved input :class:`DataConfig`, and the
train / eval datasets with their transforms."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import transforms as T

from litevision.data._image import BadSample
from litevision.data.detection import build_detection_transform, detection_formats
from litevision.data.loader import TransformedDataset
from litevision.data.registry import DATASETS, DataBundle, build_dataset
from litevision.data.transforms import (
    AugmentConfig,
    ToMode,
    build_eval_transform,
    build_train_transform,
    resolve_normalization,
)
from litevision.errors import UserError
from litevision.models import DataConfig, resolve_data_config

SPLITS = ("train", "val", "test")
# Folder datasets reading users' files: they take load_bundle's ``skip_bad``.
FOLDER_DATASETS = ("folder", "detection_folder", "coco_detection", "voc_detection", "yolo_detection")
log = logging.getLogger(__name__)


def absolute_data_path(name: str) -> str:
    """A registered dataset name as it is; a folder given by a relative path, made absolute."""
    if name not in DATASETS and Path(name).is_dir():
        return str(Path(name).resolve())
    return name


def load_bundle(name: str, options: dict[str, Any] | None = None, *, root: str | None = None,
                skip_bad: bool = False) -> DataBundle:
    """A registered dataset, or ``name`` as a folder path: a detection dataset when it has the layout of one
    (COCO, Pascal VOC, YOLO: :func:`~litevision.data.detection.detection_formats`), else an ImageFolder."""
    opts = dict(options or {})
    is_path = name not in DATASETS and (Path(name).is_dir() or os.sep in name)
    if is_path:
        opts.setdefault("root", name)
    if root is not None:
        opts["root"] = root
    if is_path:
        name = "detection_folder" if detection_formats(opts["root"]) else "folder"
    if name in FOLDER_DATASETS:
        opts.setdefault("skip_bad", skip_bad)
    try:
        return build_dataset(name, **opts)
    except TypeError as e:
        if "unexpected keyword" in str(e) or "required" in str(e):
            raise UserError(f"dataset {name!r}: {e} (check data.options / data.root)") from None
        raise


def data_config_for(
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
) -> DataConfig:
    """The model card's input configuration resolved against the dataset and the recipe's ``data`` section.

    Size, crop and interpolation come from the recipe, else the card; mean/std from the recipe, else the card
    or the dataset's statistics (``norm``, see :func:`~litevision.data.transforms.resolve_normalization`); with
    ``norm="dataset"`` a dataset that publishes none (your image folder) gets them estimated on a sample of
    its training split (:func:`estimate_statistics`, logged). A dataset of ready tensors (hyperspectral
    patches) gets its sample shape and no normalization.
    """
    chans = in_chans or bundle.in_chans
    card = resolve_data_config(model_name)
    if bundle.kind == "tensor":  # ready tensors: no resizing or normalization here
        shape = tuple(int(v) for v in bundle.train[0][0].shape)
        return card.replace(input_size=shape, mean=(0.0,) * chans, std=(1.0,) * chans, crop_pct=1.0,
                            norm_source="none")
    size = input_size or card.input_size[1]
    stats = bundle.extra
    if norm == "dataset" and mean is None and not ("mean" in stats and "std" in stats):
        stats = estimate_statistics(bundle.train, chans)
        log.info("data.norm=dataset: %s publishes no statistics; mean %s / std %s estimated on %d training images",
                 bundle.description or "the dataset", _fmt(stats["mean"]), _fmt(stats["std"]), stats["images"])
    m, s, source = resolve_normalization(card.mean, card.std, stats, chans, norm, pretrained)
    if stats.get("estimated"):
        source = "estimated"
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise UserError("set both data.mean and data.std, or neither")
        if len(mean) != chans or len(std) != chans:
            raise UserError(f"data.mean/std need {chans} values (one per input channel)")
        m, s, source = tuple(float(v) for v in mean), tuple(float(v) for v in std), "config"
    return card.replace(input_size=(chans, size, size), mean=m, std=s, norm_source=source,
                        crop_pct=crop_pct if crop_pct is not None else card.crop_pct,
                        interpolation=interpolation or card.interpolation)


def estimate_statistics(dataset: Dataset, in_chans: int, max_images: int = 256) -> dict[str, Any]:
    """Per-channel mean and std of pixel values in [0, 1] over up to ``max_images`` images spread evenly over
    ``dataset`` (converted to grey or RGB for ``in_chans``); unreadable images are left out."""
    to_mode = ToMode(in_chans)
    step = max(1, len(dataset) // max_images)
    total = torch.zeros(in_chans, dtype=torch.float64)
    squares = torch.zeros(in_chans, dtype=torch.float64)
    pixels, images = 0, 0
    for i in range(0, len(dataset), step):
        sample = dataset[i][0]
        if isinstance(sample, BadSample):
            continue
        x = T.functional.pil_to_tensor(to_mode(sample)).to(torch.float64).flatten(1) / 255.0
        total += x.sum(1)
        squares += (x * x).sum(1)
        pixels += x.shape[1]
        images += 1
        if images >= max_images:
            break
    if not images:
        raise UserError("cannot estimate the dataset's mean/std: no readable training image")
    mean = total / pixels
    std = (squares / pixels - mean * mean).clamp_min(1e-12).sqrt()
    return {"mean": tuple(mean.tolist()), "std": tuple(max(v, 1e-3) for v in std.tolist()), "images": images,
            "estimated": True}


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def split_dataset(bundle: DataBundle, split: str) -> Dataset:
    """The raw ``split`` (train, val or test) of ``bundle``."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: use {', '.join(SPLITS)}")
    if split == "val" and bundle.val is None:
        raise UserError(f"{bundle.description or 'this dataset'} has no val split (use test)")
    return {"train": bundle.train, "val": bundle.val, "test": bundle.test}[split]


def train_dataset(bundle: DataBundle, data_config: DataConfig, aug: AugmentConfig, *, seed: int) -> Dataset:
    """The training split with the training transform, augmentation seeded by (seed, epoch, index)."""
    transform = None if bundle.kind == "tensor" else build_train_transform(data_config, aug)
    return TransformedDataset(bundle.train, transform, seed=seed)


def eval_dataset(bundle: DataBundle, data_config: DataConfig, split: str = "test") -> Dataset:
    """The ``split`` of ``bundle`` with the evaluation transform (resize, center crop, normalize)."""
    transform = None if bundle.kind == "tensor" else build_eval_transform(data_config)
    return TransformedDataset(split_dataset(bundle, split), transform, seed=None)


def detection_train_dataset(bundle: DataBundle, data_config: DataConfig, aug: AugmentConfig, *, seed: int) -> Dataset:
    """The training split with the detection training transform (boxes follow the image), augmentation seeded by
    (seed, epoch, index); samples are ``(image tensor, target)``."""
    transform = build_detection_transform(data_config, aug)
    return TransformedDataset(split_dataset(bundle, "train"), transform, seed=seed, joint=True)


def detection_eval_dataset(bundle: DataBundle, data_config: DataConfig, split: str = "test") -> Dataset:
    """The ``split`` of ``bundle`` resized to the model input and normalized, boxes scaled with it."""
    transform = build_detection_transform(data_config, None)
    return TransformedDataset(split_dataset(bundle, split), transform, seed=None, joint=True)
