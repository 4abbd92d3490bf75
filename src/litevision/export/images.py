"""Real images for calibration and parity checks: the bundled dataset's test split or a folder of images.

Images are converted to the model's channel count (grey ``L`` or ``RGB``), resized to (H, W) and
normalized with the model's mean/std, so calibration sees the value range the deployed model will.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from litevision.errors import UserError

BUNDLED = "bundled"
BUNDLED_DATASET = "fashion_mnist_subset"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def load_images(
    source: str | os.PathLike[str] | None,
    *,
    count: int,
    input_size: tuple[int, int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> Tensor:
    """``count`` preprocessed images as a (count, C, H, W) float tensor.

    ``source``: ``None`` or ``"bundled"`` (the bundled Fashion-MNIST test subset), a registered dataset
    name (its test split), or a folder searched recursively for image files (sorted order).
    """
    pil_images = _pil_images(source, count)
    return preprocess(pil_images, input_size=input_size, mean=mean, std=std)


def preprocess(images: list, *, input_size: tuple[int, int, int], mean: tuple[float, ...],
               std: tuple[float, ...]) -> Tensor:
    """PIL images → normalized (N, C, H, W): mode by channel count, bilinear resize to (H, W)."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    chans, height, width = input_size
    if chans not in (1, 3):
        raise UserError(f"image inputs need 1 or 3 channels, the model takes {chans}")
    mode = "L" if chans == 1 else "RGB"
    batch = []
    for img in images:
        img = img.convert(mode).resize((width, height), Image.BILINEAR)
        batch.append(pil_to_tensor(img).float().div_(255.0))
    x = torch.stack(batch)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


def _pil_images(source: str | os.PathLike[str] | None, count: int) -> list:
    from PIL import Image

    if source is None or str(source) == BUNDLED:
        return _dataset_images(BUNDLED_DATASET, count)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        return [Image.open(p) for p in files[:count]]
    from litevision.data import list_datasets

    if str(source) in list_datasets():
        return _dataset_images(str(source), count)
    raise UserError(f"images: {source!r} is neither a folder nor a registered dataset (or 'bundled')")


def _dataset_images(name: str, count: int) -> list:
    from litevision.data import build_dataset, list_datasets

    if name not in list_datasets():
        raise UserError(f"dataset {name!r} is not available; give a folder of images instead")
    bundle = build_dataset(name)
    if bundle.kind != "image":
        raise UserError(f"dataset {name!r} holds {bundle.kind} samples, not images")
    test = bundle.test
    n = min(count, len(test))
    step = max(1, len(test) // n)  # spread over the split so every class shows up
    return [test[i * step][0] for i in range(n)]
