"""A synthetic, learnable image dataset for speed tests and smoke runs (no files, any size).

Every class has a smooth random template (a few low-frequency cosines per channel); a sample is its
class template plus pixel noise, so a model learns it within a few steps. Fully determined by ``seed``.
"""

from __future__ import annotations

import numpy as np

from litevision.data._image import ArrayImageDataset
from litevision.data.registry import DataBundle, register_dataset


def _make(n: int, templates: np.ndarray, noise: float, rng: np.random.Generator) -> ArrayImageDataset:
    labels = np.arange(n) % len(templates)
    rng.shuffle(labels)
    x = templates[labels] + rng.normal(0.0, noise, size=(n, *templates.shape[1:]))
    images = np.clip(x * 255.0, 0, 255).astype(np.uint8)
    if images.shape[-1] == 1:
        images = images[..., 0]
    return ArrayImageDataset(images, labels)


@register_dataset("synthetic", "synthetic learnable images (class templates + noise) for speed tests and smoke runs")
def synthetic(
    num_classes: int = 10,
    image_size: int = 32,
    in_chans: int = 3,
    train_size: int = 1000,
    test_size: int = 200,
    noise: float = 0.15,
    seed: int = 0,
) -> DataBundle:
    if in_chans not in (1, 3):
        raise ValueError(f"synthetic images are grey (in_chans=1) or RGB (in_chans=3), got {in_chans}")
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, image_size), np.linspace(0, 1, image_size), indexing="ij")
    templates = np.zeros((num_classes, image_size, image_size, in_chans))
    for c in range(num_classes):
        for ch in range(in_chans):
            fy, fx, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
            templates[c, :, :, ch] = 0.5 + 0.3 * np.cos(2 * np.pi * (fy * yy + fx * xx) + phase)
    return DataBundle(
        train=_make(train_size, templates, noise, rng),
        test=_make(test_size, templates, noise, rng),
        num_classes=num_classes,
        in_chans=in_chans,
        class_names=[f"class_{c}" for c in range(num_classes)],
        native_size=(image_size, image_size),
        description=f"synthetic {num_classes}-class {image_size}x{image_size}",
        extra={"mean": (0.5,) * in_chans, "std": (0.25,) * in_chans},
    )
