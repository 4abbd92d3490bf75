"""Hyperspectral classification metrics, their report and classification maps.

The remote-sensing convention: overall accuracy (OA, fraction of test pixels right), average accuracy
(AA, the mean of the per-class accuracies = recalls, over classes that have test pixels) and Cohen's
kappa (agreement corrected for chance, from the confusion matrix). Maps are (H, W) integer images where
0 is "no label / not predicted" and k + 1 is class k.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from litevision.utils.optional import require


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


@dataclass
class HSIReport:
    """OA / AA / kappa (fractions in [0, 1]), per-class accuracy and the confusion matrix of one evaluation."""

    oa: float
    aa: float
    kappa: float
    num_test_pixels: int
    per_class: list[dict[str, Any]]
    confusion_matrix: list[list[int]]
    meta: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def from_predictions(cls, y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], *,
                         meta: dict[str, Any] | None = None) -> HSIReport:
        return cls(**hsi_report(y_true, y_pred, class_names), meta=dict(meta or {}))

    def metrics(self) -> dict[str, float | None]:
        return {"oa": self.oa, "aa": self.aa, "kappa": self.kappa}

    def to_dict(self) -> dict[str, Any]:
        return {"oa": self.oa, "aa": self.aa, "kappa": self.kappa, "num_test_pixels": self.num_test_pixels,
                "per_class": self.per_class, "confusion_matrix": self.confusion_matrix, "meta": self.meta}

    def summary(self) -> str:
        lines = [f"OA {100 * self.oa:.2f}%  AA {100 * self.aa:.2f}%  kappa {100 * self.kappa:.2f}  "
                 f"({self.num_test_pixels} pixels)"]
        for row in self.per_class:
            acc = "-" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f}"
            lines.append(f"  {row['class']:32s} {acc:>7s}  ({row['support']})")
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike[str], *, plots: bool = True) -> dict[str, Path]:
        """metrics.json, per_class.csv and confusion_matrix.csv (the class map needs the model: see
        :meth:`litevision.engine.tasks.HyperspectralTask.visualize`)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "metrics.json", "per_class": out / "per_class.csv",
                 "confusion_csv": out / "confusion_matrix.csv"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        with open(paths["per_class"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "accuracy", "support"])
            w.writerows([r["class"], "" if r["accuracy"] is None else f"{r['accuracy']:.6f}", r["support"]]
                        for r in self.per_class)
        names = [r["class"] for r in self.per_class]
        with open(paths["confusion_csv"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["true \\ predicted", *names])
            w.writerows([name, *row] for name, row in zip(names, self.confusion_matrix))
        return paths


def label_map(shape: tuple[int, int], positions: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(H, W) map with ``classes[i] + 1`` at ``positions[i]`` (row, col) and 0 elsewhere."""
    out = np.zeros(shape, dtype=np.int64)
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
    out[positions[:, 0], positions[:, 1]] = np.asarray(classes, dtype=np.int64) + 1
    return out


def class_palette(num_classes: int) -> np.ndarray:
    """(K + 1, 3) uint8 colours: black for 0 (unlabelled), then distinct colours per class."""
    matplotlib = require("matplotlib", "report")

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
    require("matplotlib", "report")
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
