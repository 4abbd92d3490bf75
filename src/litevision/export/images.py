"""Real images for calibration and parity checks: the bundled dataset's test split, another registered
dataset, or a folder of images.

Images go through the evaluation transform of :mod:`litevision.data.transforms` (channel mode, resize,
center crop, normalize) with the model's :class:`~litevision.models.DataConfig`, so calibration
and parity checks see exactly what the trained model sees in ``litevision eval``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from litevision.data import build_dataset, list_datasets
from litevision.data.transforms import build_eval_transform
from litevision.errors import UserError
from litevision.models import DataConfig

BUNDLED = "bundled"
BUNDLED_DATASET = "fashion_mnist_subset"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def load_images(source: str | os.PathLike[str] | None, *, count: int, cfg: DataConfig, split: str = "test") -> Tensor:
    """``count`` (or fewer, if the source has fewer) preprocessed images as an (N, C, H, W) tensor.

    ``source``: ``None`` / ``"bundled"`` (the bundled Fashion-MNIST test subset), a registered dataset name
    (its ``split``, spread evenly so every class shows up), or a folder searched recursively for images.
    """
    if cfg.input_size[0] not in (1, 3):
        raise UserError(f"image inputs need 1 or 3 channels, the model takes {cfg.input_size[0]}")
    transform = build_eval_transform(cfg)
    return torch.stack([transform(img) for img in _pil_images(source, count, split)])


def _pil_images(source: str | os.PathLike[str] | None, count: int, split: str) -> list:
    from PIL import Image

    if source is None or str(source) == BUNDLED:
        return _dataset_images(BUNDLED_DATASET, count, split)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        step = max(1, len(files) // count)
        return [Image.open(p) for p in files[::step][:count]]
    return _dataset_images(str(source), count, split)


def _dataset_images(name: str, count: int, split: str) -> list:
    if name not in list_datasets():
        raise UserError(f"images: {name!r} is neither a folder nor a registered dataset (or 'bundled')")
    bundle = build_dataset(name)
    if bundle.kind != "image":
        raise UserError(f"dataset {name!r} holds {bundle.kind} samples, not images")
    data = {"train": bundle.train, "test": bundle.test, "val": bundle.val}.get(split)
    if data is None:
        raise UserError(f"dataset {name!r} has no {split!r} split")
    n = min(count, len(data))
    step = max(1, len(data) // max(n, 1))
    return [data[i * step][0] for i in range(n)]
