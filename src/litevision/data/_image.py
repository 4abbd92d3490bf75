"""Image datasets shared by the registered datasets: in-memory uint8 arrays and image folders.

Both yield ``(PIL.Image, label)``. An image that cannot be read is never a crash deep inside a loader
worker: the dataset returns a :class:`BadSample` naming the file, the collate function gathers them and
the main process either raises :class:`BadImageError` (naming the file) or skips and counts them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from litevision.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")


class BadImageError(UserError):
    """An image file that cannot be opened or decoded."""


@dataclass(frozen=True)
class BadSample:
    """Stands in for a sample whose image could not be read (``path``) with the reason (``error``)."""

    path: str
    error: str


def stratified_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with ``fraction`` of every class held out, reproducibly."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_held = int(round(len(idx) * fraction))
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


class ArrayImageDataset(Dataset):
    """Images held as a uint8 array (N, H, W) for grey or (N, H, W, 3) for RGB, with integer labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(f"expected uint8 images (N, H, W[, 3]), got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), int(self.labels[index])

    def subset(self, indices: np.ndarray) -> ArrayImageDataset:
        return ArrayImageDataset(self.images[indices], self.labels[indices])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()


class ImageFolderDataset(Dataset):
    """``root/<class_name>/<image>`` (torchvision's ImageFolder layout), classes in sorted order.

    Every file's header is checked when the dataset is built (cheap: no pixels are decoded), so files
    that are not images are reported at once, before training starts. Files that only fail when their
    pixels are decoded (truncated) are reported when they are loaded. ``skip_bad=True`` drops the first
    kind here (listed in ``skipped``) and hands the second kind to the collate function to be counted.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        class_names: Sequence[str] | None = None,
        skip_bad: bool = False,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"image folder not found: {self.root}")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if class_names is None:
            class_names = found
        elif extra := sorted(set(found) - set(class_names)):
            raise UserError(f"{self.root}: class folders {extra} are not in the training classes {list(class_names)}")
        if not class_names:
            raise UserError(f"{self.root}: no class sub-folders (expected root/<class_name>/<image files>)")
        self.class_names = list(class_names)
        self.skip_bad = skip_bad
        self.skipped: list[BadSample] = []
        self.samples: list[tuple[str, int]] = []
        exts = tuple(e.lower() for e in extensions)
        for label, name in enumerate(self.class_names):
            folder = self.root / name
            if not folder.is_dir():
                continue  # a test split may lack a class
            for dirpath, _, files in sorted(os.walk(folder, followlinks=True)):
                for f in sorted(files):
                    if f.lower().endswith(exts):
                        self._add(os.path.join(dirpath, f), label)
        if self.skipped and not skip_bad:  # every unreadable file at once, not one per attempt
            raise BadImageError(bad_image_message(self.skipped))
        if not self.samples:
            raise UserError(f"{self.root}: no readable images with extensions {', '.join(exts)}")

    def _add(self, path: str, label: int) -> None:
        try:
            with Image.open(path) as img:
                img.size  # noqa: B018  (header parsed by open(); size access keeps linters honest)
        except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError...
            self.skipped.append(BadSample(path, f"{type(e).__name__}: {e}"))
            return
        self.samples.append((path, label))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image | BadSample, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                img.load()
                # Palette / 16-bit / CMYK images become "RGB" or "L" here; the transform picks the final mode.
                return (img.convert("RGB") if img.mode not in ("L", "RGB") else img.copy()), label
        except Exception as e:
            return BadSample(path, f"{type(e).__name__}: {e}"), label

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]


def bad_image_message(bad: Sequence[BadSample], shown: int = 5) -> str:
    """One message naming the unreadable files (the first ``shown``, then a count) and what to do."""
    names = "; ".join(f"{b.path} ({b.error})" for b in bad[:shown])
    more = f"; and {len(bad) - shown} more" if len(bad) > shown else ""
    what = "image" if len(bad) == 1 else f"{len(bad)} images"
    return (f"cannot read {what}: {names}{more}. Fix or remove the files, or pass --skip-bad (data.skip_bad=true) "
            "to skip unreadable images; each skipped file is named in the log and in results.json.")
