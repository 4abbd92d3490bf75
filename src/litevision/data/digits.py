"""scikit-learn's ``load_digits``: 1,797 8x8 grey hand-written digits (a copy of the UCI optdigits test set).

Pixel values 0..16 are scaled to uint8 0..255; a stratified 20% (seeded) is the test split.
"""

from __future__ import annotations

import numpy as np

from litevision.data._image import ArrayImageDataset, stratified_indices
from litevision.data.registry import DataBundle, register_dataset


@register_dataset("digits", "scikit-learn digits: 1,797 8x8 grey images, 10 classes (stratified 80/20 split)")
def digits(test_fraction: float = 0.2, val_fraction: float = 0.0, seed: int = 0) -> DataBundle:
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = np.clip(raw.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    labels = raw.target.astype(np.int64)
    full = ArrayImageDataset(images, labels)
    train_idx, test_idx = stratified_indices(labels, test_fraction, seed)
    train, val = full.subset(train_idx), None
    if val_fraction > 0:
        kept, held = stratified_indices(train.labels, val_fraction, seed + 1)
        train, val = train.subset(kept), train.subset(held)
    scaled = images.astype(np.float64) / 255.0
    return DataBundle(
        train=train,
        test=full.subset(test_idx),
        val=val,
        num_classes=10,
        in_chans=1,
        class_names=[str(d) for d in range(10)],
        native_size=(8, 8),
        description="scikit-learn digits",
        extra={"mean": (float(scaled.mean()),), "std": (float(scaled.std()),), "licence": "CC BY 4.0 (UCI)"},
    )
