"""Hyperspectral classification metrics and classification maps (pure functions).

The remote-sensing convention: overall accuracy (OA, fraction of test pixels right), average accuracy
(AA, the mean of the per-class accuracies = recalls, over classes that have test pixels) and Cohen's
kappa (agreement corrected for chance, from the confusion matrix). Maps are (H, W) integer images where
0 is "no label / not predicted" and k + 1 is class k.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts; row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def overall_accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class without test pixels."""
    support = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def average_accuracy(cm: np.ndarray) -> float:
    """Mean per-class accuracy over the classes present in the test set."""
    acc = per_class_accuracy(cm)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def cohen_kappa(cm: np.ndarray) -> float:
    """(p_o - p_e) / (1 - p_e) with p_e from the row and column marginals."""
    total = cm.sum()
    if not total:
        return float("nan")
    p_o = np.trace(cm) / total
    p_e = float((cm.sum(0) * cm.sum(1)).sum()) / float(total) ** 2
    return float((p_o - p_e) / (1 - p_e)) if p_e < 1 else 1.0


def hsi_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """OA, AA, kappa (fractions in [0, 1]), per-class accuracy and support, and the confusion matrix."""
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    acc = per_class_accuracy(cm)
    return {
        "oa": overall_accuracy(cm),
        "aa": average_accuracy(cm),
        "kappa": cohen_kappa(cm),
        "num_test_pixels": int(cm.sum()),
        "per_class": [
            {"class": name, "accuracy": None if np.isnan(a) else float(a), "support": int(s)}
            for name, a, s in zip(class_names, acc, cm.sum(1))
        ],
        "confusion_matrix": cm.tolist(),
    }


def label_map(shape: tuple[int, int], positions: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(H, W) map with ``classes[i] + 1`` at ``positions[i]`` (row, col) and 0 elsewhere."""
    out = np.zeros(shape, dtype=np.int64)
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
    out[positions[:, 0], positions[:, 1]] = np.asarray(classes, dtype=np.int64) + 1
    return out


def class_palette(num_classes: int) -> np.ndarray:
    """(K + 1, 3) uint8 colours: black for 0 (unlabelled), then distinct colours per class."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    colours = [(0, 0, 0)] + [tuple(int(255 * v) for v in cmap(i % 20)[:3]) for i in range(num_classes)]
    return np.asarray(colours, dtype=np.uint8)


def save_classification_maps(
    path: str | os.PathLike[str],
    ground_truth: np.ndarray,
    predicted: np.ndarray,
    class_names: Sequence[str],
    title: str = "",
) -> Path:
    """Write a PNG with the ground truth and the predicted map side by side, plus a class legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if ground_truth.shape != predicted.shape:
        raise ValueError(f"maps differ in shape: {ground_truth.shape} vs {predicted.shape}")
    palette = class_palette(len(class_names))
    fig = Figure(figsize=(11, 5.2))
    FigureCanvasAgg(fig)  # a private canvas: no pyplot state, no GUI backend
    axes = fig.subplots(1, 2)
    for ax, data, name in zip(axes, (ground_truth, predicted), ("ground truth", "predicted")):
        ax.imshow(palette[np.clip(data, 0, len(class_names))], interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    handles = [Patch(color=palette[i + 1] / 255, label=n) for i, n in enumerate(class_names)]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.78, wspace=0.05)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
