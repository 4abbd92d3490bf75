"""Classification metrics: one code path for ``litevision eval``, per-epoch validation and ``litevision compare``.

:func:`compute_report` turns logits and targets into an :class:`EvalReport`: top-1 / top-5, per-class
precision / recall / F1, the confusion matrix and, for two-class tasks, the threshold report of the
seed-002 workflow::

    th: 0.38 QA_dirt(True:4212, False:2400) T_R:93.803 M_R:95.027 F_R:96.250

— the threshold applied to the positive class's probability, the task name, the number of test
samples of the positive and the negative class, then recalls in percent: T_R over all samples (the
fraction classified correctly), M_R of the positive class, F_R of the negative class. The threshold is
fixed, or chosen on the evaluated set as the one with the best balanced accuracy, or the one that keeps
one class's recall at a target while maximizing the other's (:class:`ThresholdOptions`). A sweep over
thresholds 0.00..1.00 is kept for the CSV and the ROC / PR plots.

Any code that already has predictions (distributed evaluation, other tools) uses the same metric code;
:func:`litevision.engine.evaluate` runs a model first.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from litevision.errors import UserError
from litevision.utils.optional import require


@dataclass
class ThresholdOptions:
    """How a two-class report picks its threshold on the positive class's probability.

    ``mode``: ``"fixed"`` (``threshold``), ``"balanced"`` (best balanced accuracy) or ``"recall"`` (the
    threshold keeping ``recall_class``'s recall >= ``target_recall`` with the best recall of the other
    class). ``positive_class`` is a class name or index (default: index 1). ``task`` names the task in
    the report line (default: the dataset name).
    """

    mode: str = "fixed"
    threshold: float = 0.5
    positive_class: str | int | None = None
    target_recall: float | None = None
    recall_class: str | int | None = None
    task: str | None = None
    step: float = 0.01


@dataclass
class ThresholdReport:
    threshold: float
    mode: str
    task: str
    positive: str
    negative: str
    counts: dict[str, int]
    overall_recall: float  # T_R, %
    positive_recall: float  # M_R, %
    negative_recall: float  # F_R, %
    balanced_accuracy: float  # %
    positive_precision: float  # %

    def line(self) -> str:
        """The seed-002 report line."""
        return (f"th: {self.threshold:.2f} {self.task}({self.positive}:{self.counts[self.positive]}, "
                f"{self.negative}:{self.counts[self.negative]}) T_R:{self.overall_recall:.3f} "
                f"M_R:{self.positive_recall:.3f} F_R:{self.negative_recall:.3f}")


@dataclass
class ClassMetrics:
    name: str
    precision: float  # %
    recall: float  # %
    f1: float  # %
    support: int


@dataclass
class EvalReport:
    class_names: list[str]
    num_samples: int
    top1: float  # %
    top5: float | None  # %, None with 5 classes or fewer
    loss: float  # mean cross-entropy
    balanced_accuracy: float  # %, mean per-class recall
    macro_f1: float  # %
    per_class: list[ClassMetrics]
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    threshold: ThresholdReport | None = None
    sweep: list[dict[str, float]] | None = None
    skipped: list[str] = field(default_factory=list)  # unreadable images left out
    meta: dict[str, Any] = field(default_factory=dict)  # model, dataset, split, input size ...
    probs: np.ndarray | None = field(default=None, repr=False)  # (N, C) softmax, for plots; not serialized
    targets: np.ndarray | None = field(default=None, repr=False)

    def metrics(self) -> dict[str, float | None]:
        """The scalar metrics (percentages, and the mean cross-entropy as ``loss``)."""
        return {"top1": self.top1, "top5": self.top5, "loss": self.loss, "balanced_accuracy": self.balanced_accuracy,
                "macro_f1": self.macro_f1}

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("probs", "targets", "sweep")}
        if self.threshold is not None:
            d["threshold"]["line"] = self.threshold.line()
        return _finite(d)

    def summary(self) -> str:
        skipped = f" ({len(self.skipped)} unreadable skipped)" if self.skipped else ""
        top5 = f"  top-5: {self.top5:.3f}%" if self.top5 is not None else ""
        lines = [f"samples: {self.num_samples}{skipped}",
                 f"top-1: {self.top1:.3f}%{top5}  balanced acc: {self.balanced_accuracy:.3f}%  "
                 f"macro F1: {self.macro_f1:.3f}%  loss: {self.loss:.4f}"]
        width = max(len(c.name) for c in self.per_class)
        lines.append(f"{'class'.ljust(width)}  precision  recall      f1  support")
        for c in self.per_class:
            lines.append(f"{c.name.ljust(width)}  {c.precision:9.3f}  {c.recall:6.3f}  {c.f1:6.3f}  {c.support:7d}")
        if self.threshold is not None:
            lines.append(self.threshold.line())
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike[str], *, plots: bool = True) -> dict[str, Path]:
        """Write metrics.json, per_class.csv, confusion_matrix.csv (+ .png); for two classes also
        threshold_sweep.csv, roc.png and pr.png. Returns the written paths by kind."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "metrics.json", "per_class": out / "per_class.csv",
                 "confusion_csv": out / "confusion_matrix.csv"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2))
        with open(paths["per_class"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "precision", "recall", "f1", "support"])
            for c in self.per_class:
                w.writerow([c.name, f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}", c.support])
        with open(paths["confusion_csv"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["true \\ predicted", *self.class_names])
            for name, row in zip(self.class_names, self.confusion):
                w.writerow([name, *row])
        if self.sweep:
            paths["sweep"] = out / "threshold_sweep.csv"
            with open(paths["sweep"], "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(self.sweep[0]))
                w.writeheader()
                w.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in self.sweep)
        if plots:
            paths.update(_plot(self, out))
        return paths


def _finite(obj: Any) -> Any:
    """JSON has no NaN: undefined metrics (a class absent from the set) become null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------------------------------------
# metrics from predictions


def _pct(num: np.ndarray | float, den: np.ndarray | float) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)


def _class_index(value: str | int | None, class_names: Sequence[str], default: int, what: str) -> int:
    if value is None:
        return default
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit() and value not in class_names):
        idx = int(value)
        if not 0 <= idx < len(class_names):
            raise UserError(f"{what} {idx} is out of range for {len(class_names)} classes")
        return idx
    if value not in class_names:
        raise UserError(f"{what} {value!r} is not a class; classes: {', '.join(class_names)}")
    return list(class_names).index(value)


def threshold_sweep(scores: np.ndarray, is_pos: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Per threshold t (predict positive when score >= t): counts and recalls in percent."""
    pred_pos = scores[None, :] >= thresholds[:, None]  # (T, N)
    tp = (pred_pos & is_pos[None]).sum(1)
    fp = (pred_pos & ~is_pos[None]).sum(1)
    n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
    fn, tn = n_pos - tp, n_neg - fp
    pos_recall, neg_recall = _pct(tp, n_pos), _pct(tn, n_neg)
    return {"threshold": thresholds, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "overall_recall": _pct(tp + tn, n_pos + n_neg), "positive_recall": pos_recall,
            "negative_recall": neg_recall, "balanced_accuracy": (pos_recall + neg_recall) / 2,
            "positive_precision": _pct(tp, tp + fp)}


def _choose(sweep: dict[str, np.ndarray], opts: ThresholdOptions, pos: int, neg: int, names: Sequence[str]) -> int:
    t = sweep["threshold"]
    closeness = -np.abs(t - 0.5)  # ties go to the threshold nearest 0.5
    if opts.mode == "fixed":
        return -1
    if opts.mode == "balanced":
        key = np.nan_to_num(sweep["balanced_accuracy"], nan=-1.0)
    elif opts.mode == "recall":
        if opts.target_recall is None:
            raise UserError("threshold mode 'recall' needs a target recall (e.g. --target-recall 95)")
        target = opts.target_recall * 100 if opts.target_recall <= 1 else opts.target_recall
        cls = _class_index(opts.recall_class, names, pos, "recall class")
        if cls not in (pos, neg):
            raise UserError("the recall class must be one of the two classes")
        mine, other = ("positive_recall", "negative_recall") if cls == pos else ("negative_recall", "positive_recall")
        ok = np.nan_to_num(sweep[mine], nan=-1.0) >= target - 1e-9
        if not ok.any():
            raise UserError(f"no threshold reaches {target:.3f}% recall for {names[cls]!r}")
        key = np.where(ok, np.nan_to_num(sweep[other], nan=-1.0), -np.inf)
    else:
        raise UserError(f"threshold mode must be fixed, balanced or recall, not {opts.mode!r}")
    best = np.flatnonzero(key == key.max())
    return int(best[np.argmax(closeness[best])])


def compute_report(
    logits: Tensor | np.ndarray,
    targets: Tensor | np.ndarray,
    class_names: Sequence[str],
    *,
    threshold: ThresholdOptions | None = None,
    meta: dict[str, Any] | None = None,
    skipped: Sequence[str] = (),
) -> EvalReport:
    """All metrics from ``logits`` (N, C) and integer ``targets`` (N,)."""
    logits_t = torch.as_tensor(logits, dtype=torch.float32)
    targets_t = torch.as_tensor(targets, dtype=torch.long)
    num_classes = len(class_names)
    if logits_t.ndim != 2 or logits_t.shape[1] != num_classes:
        raise UserError(f"the model gives {tuple(logits_t.shape[1:])} outputs for {num_classes} classes")
    n = len(targets_t)
    if n == 0:
        raise UserError("nothing to evaluate: the evaluation set is empty")
    loss = float(nn.functional.cross_entropy(logits_t, targets_t))
    probs = torch.softmax(logits_t, dim=1).numpy()
    y = targets_t.numpy()
    pred = probs.argmax(1)
    cm = np.bincount(y * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    tp = np.diag(cm)
    # precision of a class never predicted is 0 (as scikit-learn reports it); recall of a class absent
    # from the set is undefined (NaN here, null in JSON) and left out of the averages
    precision = np.nan_to_num(_pct(tp, cm.sum(0)), nan=0.0)
    recall = _pct(tp, cm.sum(1))
    with np.errstate(invalid="ignore"):
        f1 = 2 * precision * recall / (precision + recall)
    f1 = np.where((precision == 0) & (recall == 0), 0.0, f1)
    top5 = None
    if num_classes > 5:
        top5_idx = np.argsort(-probs, axis=1)[:, :5]
        top5 = float(_pct((top5_idx == y[:, None]).any(1).sum(), n))
    report = EvalReport(
        class_names=list(class_names),
        num_samples=n,
        top1=float(_pct((pred == y).sum(), n)),
        top5=top5,
        loss=loss,
        balanced_accuracy=float(np.nanmean(recall)),
        macro_f1=float(np.nanmean(f1)),
        per_class=[ClassMetrics(name, float(p), float(r), float(f), int(s))
                   for name, p, r, f, s in zip(class_names, precision, recall, f1, cm.sum(1))],
        confusion=cm.tolist(),
        skipped=list(skipped),
        meta=dict(meta or {}),
        probs=probs,
        targets=y,
    )
    if num_classes == 2:
        opts = threshold or ThresholdOptions()
        pos = _class_index(opts.positive_class, class_names, 1, "positive class")
        neg = 1 - pos
        grid = np.round(np.arange(0.0, 1.0 + opts.step / 2, opts.step), 6)
        if opts.mode == "fixed" and not np.isclose(grid, opts.threshold).any():
            grid = np.sort(np.append(grid, opts.threshold))
        sweep = threshold_sweep(probs[:, pos], y == pos, grid)
        i = _choose(sweep, opts, pos, neg, class_names)
        if i < 0:
            i = int(np.argmin(np.abs(grid - opts.threshold)))
        task = opts.task or Path(str(report.meta.get("dataset") or "task")).name  # a folder path -> its name
        report.threshold = ThresholdReport(
            threshold=float(grid[i]), mode=opts.mode, task=task, positive=class_names[pos], negative=class_names[neg],
            counts={class_names[pos]: int((y == pos).sum()), class_names[neg]: int((y == neg).sum())},
            overall_recall=float(sweep["overall_recall"][i]), positive_recall=float(sweep["positive_recall"][i]),
            negative_recall=float(sweep["negative_recall"][i]),
            balanced_accuracy=float(sweep["balanced_accuracy"][i]),
            positive_precision=float(sweep["positive_precision"][i]))
        report.sweep = [{k: (float(v[j]) if v.dtype.kind == "f" else int(v[j])) for k, v in sweep.items()}
                        for j in range(len(grid))]
    return report


# ---------------------------------------------------------------------------------------------------------
# plots


def roc_curve(is_pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score, from (0, 0) to (1, 1)."""
    tps, fps = _cumulative_counts(is_pos, scores)
    return np.r_[0.0, fps / max(fps[-1], 1)], np.r_[0.0, tps / max(tps[-1], 1)]


def precision_recall_curve(is_pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) at every distinct score, from the highest threshold down, plus (1, 0)."""
    tps, fps = _cumulative_counts(is_pos, scores)
    return np.r_[1.0, tps / (tps + fps)], np.r_[0.0, tps / max(tps[-1], 1)]


def _cumulative_counts(is_pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True / false positives when predicting positive at or above each distinct score (descending)."""
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], is_pos[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last index of each distinct score
    tps = np.cumsum(hits)[last]
    return tps, (last + 1) - tps


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.trapezoid(y, x))


def _plot(report: EvalReport, out: Path) -> dict[str, Path]:
    matplotlib = require("matplotlib", "report")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    paths = {}
    cm = np.asarray(report.confusion)
    n = len(report.class_names)
    size = min(2 + 0.6 * n, 14)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(1, keepdims=True))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), report.class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), report.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix (top-1 {report.top1:.2f}%)")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    paths["confusion_png"] = out / "confusion_matrix.png"
    fig.savefig(paths["confusion_png"], dpi=120)
    plt.close(fig)

    if report.threshold is not None and report.probs is not None and report.targets is not None:
        pos = report.class_names.index(report.threshold.positive)
        scores, is_pos = report.probs[:, pos], report.targets == pos
        if 0 < is_pos.sum() < len(is_pos):
            th = report.threshold
            fpr, tpr = roc_curve(is_pos, scores)
            paths["roc_png"] = _curve_png(
                plt, out / "roc.png", "ROC", (fpr, tpr), f"AUC {_area(fpr, tpr):.4f}",
                (1 - th.negative_recall / 100, th.positive_recall / 100), th.threshold,
                f"false positive rate (1 - recall of {th.negative})", f"true positive rate (recall of {th.positive})",
                "lower right", diagonal=True)
            precision, recall = precision_recall_curve(is_pos, scores)
            paths["pr_png"] = _curve_png(
                plt, out / "pr.png", "precision-recall", (recall, precision), f"AP area {_area(recall, precision):.4f}",
                (th.positive_recall / 100, th.positive_precision / 100), th.threshold, f"recall of {th.positive}",
                f"precision of {th.positive}", "lower left")
    return paths


def _curve_png(plt: Any, path: Path, title: str, xy: tuple[np.ndarray, np.ndarray], label: str,
               point: tuple[float, float], threshold: float, xlabel: str, ylabel: str, legend: str, *,
               diagonal: bool = False) -> Path:
    """One curve (ROC or precision-recall) with the chosen threshold's operating point marked in red."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(*xy, label=label)
    if diagonal:
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.scatter([point[0]], [point[1]], color="red", zorder=3, label=f"th {threshold:.2f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
