"""COCO-style detection metrics: pycocotools' ``COCOeval`` on ground truth and detections built in memory.

:class:`DetectionEvaluator` collects a detector's eval-mode outputs and the targets image by image, scales
both back to the original image (COCO's small / medium / large areas are defined in original pixels) and,
over the whole set, runs ``COCOeval(..., "bbox")`` with ``maxDets`` ``[1, 10, max_dets]``. The numbers are
pycocotools' own, as its ``summarize()`` prints them, in percent (0-100) like the classification report's
accuracy. A metric pycocotools reports as -1 (no ground truth to measure it on: a class without boxes, no
small objects) is ``None`` here (``null`` in JSON) and, as in pycocotools, left out of every mean.

:class:`DetectionReport` holds the 12 summary numbers, per-class AP (AP@[.5:.95], AP50, AP75) and the
precision-recall curve of every class at IoU 0.5 over pycocotools' 101 recall points.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from litevision.engine.tasks.base import Evaluator
from litevision.errors import UserError
from litevision.utils.optional import available, require

log = logging.getLogger(__name__)

AREAS = ("all", "small", "medium", "large")  # pycocotools' areaRngLbl


def stat_names(max_dets: int = 100) -> list[str]:
    """The keys of :meth:`DetectionReport.metrics`, in the order of pycocotools' ``COCOeval.stats``."""
    return ["map", "map50", "map75", "map_small", "map_medium", "map_large",
            "ar1", "ar10", f"ar{max_dets}", "ar_small", "ar_medium", "ar_large"]


@dataclass
class ClassAP:
    """One class's AP in percent; ``None`` where the class has no (non-crowd) ground-truth box."""

    name: str
    category_id: int
    ap: float | None  # AP@[.5:.95]
    ap50: float | None
    ap75: float | None
    num_gt: int  # non-crowd ground-truth boxes (crowd regions only excuse detections)
    num_dets: int
    precision50: list[float] | None = field(default=None, repr=False)  # PR curve at IoU 0.5, over recall_points


@dataclass
class DetectionReport:
    """COCO detection metrics of one evaluation, in percent (0-100)."""

    class_names: list[str]
    num_images: int
    num_gt: int  # non-crowd ground-truth boxes
    num_dets: int
    max_dets: int
    stats: dict[str, float | None]  # the 12 numbers of pycocotools' summarize(), keys: stat_names(max_dets)
    per_class: list[ClassAP]
    recall_points: list[float]  # pycocotools' 101 recall thresholds, the x axis of every PR curve
    skipped: list[str] = field(default_factory=list)  # unreadable images left out
    meta: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float | None]:
        """mAP@[.5:.95] (``map``), AP50, AP75, AP by object size, AR at 1 / 10 / ``max_dets`` detections per
        image and AR by size, in percent; ``None`` where there is no ground truth to measure on."""
        return dict(self.stats)

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))

    def summary(self) -> str:
        skipped = f" ({len(self.skipped)} unreadable skipped)" if self.skipped else ""
        s = self.stats
        lines = [f"images: {self.num_images}{skipped}  ground-truth boxes: {self.num_gt}  detections: {self.num_dets}",
                 f"mAP@[.5:.95] {_fmt(s['map'])}%  AP50 {_fmt(s['map50'])}%  AP75 {_fmt(s['map75'])}%",
                 f"AP small {_fmt(s['map_small'])}%  medium {_fmt(s['map_medium'])}%  large {_fmt(s['map_large'])}%",
                 f"AR@1 {_fmt(s['ar1'])}%  AR@10 {_fmt(s['ar10'])}%  "
                 f"AR@{self.max_dets} {_fmt(s[f'ar{self.max_dets}'])}%"]
        ranked = sorted((c for c in self.per_class if c.ap is not None), key=lambda c: c.ap or 0.0, reverse=True)
        if len(ranked) <= 6:
            if ranked:
                lines.append("classes (AP): " + ", ".join(f"{c.name} {c.ap:.2f}" for c in ranked))
        else:
            lines.append("best classes (AP): " + ", ".join(f"{c.name} {c.ap:.2f}" for c in ranked[:3]))
            lines.append("worst classes (AP): " + ", ".join(f"{c.name} {c.ap:.2f}" for c in ranked[-3:]))
        absent = [c.name for c in self.per_class if c.ap is None]
        if absent:
            lines.append(f"no ground truth (AP undefined): {', '.join(absent)}")
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike[str], *, plots: bool = True) -> dict[str, Path]:
        """Write metrics.json (everything, PR curves included), per_class.csv and, with ``plots`` and matplotlib
        installed, pr_curves.png. Returns the written paths by kind."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "metrics.json", "per_class": out / "per_class.csv"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2))
        with open(paths["per_class"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "category_id", "ap", "ap50", "ap75", "num_gt", "num_dets"])
            for c in self.per_class:
                w.writerow([c.name, c.category_id, *("" if v is None else f"{v:.4f}" for v in (c.ap, c.ap50, c.ap75)),
                            c.num_gt, c.num_dets])
        if plots:
            if available("matplotlib"):
                paths["pr_curves"] = plot_pr_curves(self, out / "pr_curves.png")
            else:
                log.info("matplotlib is not installed: no pr_curves.png (pip install 'litevision[report]')")
        return paths


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _finite(obj: Any) -> Any:
    """JSON has no NaN: an undefined number becomes null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------------------------------------
# the evaluator


def _array(value: Any, dtype: Any) -> np.ndarray:
    """A CPU numpy copy of a tensor / array / list; floating tensors go through float64 (bfloat16 included)."""
    if isinstance(value, Tensor):
        value = value.detach().cpu()
        value = value.double() if value.is_floating_point() else value
        value = value.numpy()
    return np.array(value, dtype=dtype)


class DetectionEvaluator(Evaluator):
    """Collects detections and targets per image; :meth:`compute` runs pycocotools over the whole set.

    ``input_size``: the (H, W) the model saw; boxes of both outputs and targets are ``xyxy`` in those pixels
    and are scaled to each target's ``orig_size`` (h, w). ``category_ids``: the COCO category id of each label
    (default 1..K), so results can be compared with other COCO tools. ``max_dets``: detections per image (and
    class, as pycocotools counts them) for the AP and the largest AR.
    """

    def __init__(self, class_names: Sequence[str], input_size: tuple[int, int], *,
                 category_ids: Sequence[int] | None = None, max_dets: int = 100) -> None:
        self.class_names = list(class_names)
        if len(input_size) != 2 or min(input_size) <= 0:
            raise UserError(f"input_size must be (H, W) in pixels, not {tuple(input_size)}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        ids = list(range(1, len(self.class_names) + 1)) if category_ids is None else [int(c) for c in category_ids]
        if len(ids) != len(self.class_names) or len(set(ids)) != len(ids):
            raise UserError(f"category_ids must give one distinct id per class ({len(self.class_names)} classes), "
                            f"not {ids}")
        self.category_ids = ids
        if max_dets <= 10:
            raise UserError(f"max_dets must be above 10 (AR is reported at 1 and 10 detections too), not {max_dets}")
        self.max_dets = int(max_dets)
        self._images: dict[int, dict[str, Any]] = {}

    def update(self, outputs: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]) -> None:
        """Add a batch: per image, the model's ``boxes`` / ``scores`` / ``labels`` and the target's ``boxes`` /
        ``labels`` / ``iscrowd`` (optional) / ``image_id`` / ``orig_size``."""
        if len(outputs) != len(targets):
            raise ValueError(f"{len(outputs)} outputs for {len(targets)} targets")
        in_h, in_w = self.input_size
        for out, target in zip(outputs, targets):
            h, w = (int(v) for v in _array(target["orig_size"], np.int64).reshape(2))
            scale = np.array([w / in_w, h / in_h, w / in_w, h / in_h])
            gt_labels = _array(target["labels"], np.int64).reshape(-1)
            crowd = target.get("iscrowd")
            record = {
                "image_id": int(_array(target["image_id"], np.int64).reshape(())),
                "orig_size": (h, w),
                "boxes": _array(out["boxes"], np.float64).reshape(-1, 4) * scale,
                "scores": _array(out["scores"], np.float64).reshape(-1),
                "labels": _array(out["labels"], np.int64).reshape(-1),
                "gt_boxes": _array(target["boxes"], np.float64).reshape(-1, 4) * scale,
                "gt_labels": gt_labels,
                "gt_iscrowd": (np.zeros(len(gt_labels), bool) if crowd is None
                               else _array(crowd, np.int64).reshape(-1) != 0),
            }
            self._check(record)
            self._add(record)

    def _check(self, record: dict[str, Any]) -> None:
        k = len(self.class_names)
        for what, labels in (("predicted", record["labels"]), ("ground-truth", record["gt_labels"])):
            if labels.size and (labels.min() < 0 or labels.max() >= k):
                raise UserError(f"image {record['image_id']}: {what} label {int(labels.max())} is outside 0..{k - 1}")
        if not len(record["boxes"]) == len(record["scores"]) == len(record["labels"]):
            raise ValueError(f"image {record['image_id']}: boxes, scores and labels differ in length")
        if len(record["gt_boxes"]) != len(record["gt_labels"]) or len(record["gt_iscrowd"]) != len(record["gt_labels"]):
            raise ValueError(f"image {record['image_id']}: target boxes, labels and iscrowd differ in length")

    def _add(self, record: dict[str, Any]) -> None:
        # the evaluation sampler shards without padding, so an image seen twice is a data error (two
        # annotations files sharing ids), not a duplicate to drop
        if record["image_id"] in self._images:
            raise UserError(f"image_id {record['image_id']} appears twice: ids must be unique in an evaluation set")
        self._images[record["image_id"]] = record

    def state(self) -> list[dict[str, Any]]:
        """One record per image (numpy arrays, boxes already in original pixels)."""
        return list(self._images.values())

    def merge(self, states: Sequence[list[dict[str, Any]]]) -> None:
        self._images = {}
        for state in states:
            for record in state:
                self._add(record)

    def compute(self, *, meta: Mapping[str, Any] | None = None, skipped: Sequence[str] = ()) -> DetectionReport:
        if not self._images:
            raise UserError("nothing to evaluate: the evaluation set is empty")
        # pycocotools orders images by id when it accumulates: sorting here makes the within-image order of
        # detections (which breaks score ties) independent of how the images were sharded
        images = [self._images[i] for i in sorted(self._images)]
        gt, results = _coco_dicts(images, self.class_names, self.category_ids)
        precision, recall, params = _run_cocoeval(gt, results, self.max_dets)
        order = [int(c) for c in params.catIds]  # pycocotools sorts the category ids
        t50, t75 = (int(np.flatnonzero(np.isclose(params.iouThrs, v))[0]) for v in (0.5, 0.75))
        m1, m10, m_max = (params.maxDets.index(m) for m in (1, 10, self.max_dets))
        a = {name: params.areaRngLbl.index(name) for name in AREAS}

        def ap(iou: int | slice = slice(None), area: str = "all") -> float | None:
            return _mean(precision[iou, :, :, a[area], m_max])

        def ar(max_index: int = m_max, area: str = "all") -> float | None:
            return _mean(recall[:, :, a[area], max_index])

        stats = dict(zip(stat_names(self.max_dets), [
            ap(), ap(t50), ap(t75), ap(area="small"), ap(area="medium"), ap(area="large"),
            ar(m1), ar(m10), ar(), ar(area="small"), ar(area="medium"), ar(area="large")]))
        k_classes = len(self.class_names)
        num_gt = np.bincount(np.concatenate([r["gt_labels"][~r["gt_iscrowd"]] for r in images]), minlength=k_classes)
        num_dets = np.bincount(np.concatenate([r["labels"] for r in images]), minlength=k_classes)
        per_class = []
        for label, (name, cat) in enumerate(zip(self.class_names, self.category_ids)):
            k = order.index(cat)
            curve = precision[t50, :, k, a["all"], m_max]
            per_class.append(ClassAP(
                name=name, category_id=cat, ap=_mean(precision[:, :, k, a["all"], m_max]),
                ap50=_mean(precision[t50, :, k, a["all"], m_max]), ap75=_mean(precision[t75, :, k, a["all"], m_max]),
                num_gt=int(num_gt[label]), num_dets=int(num_dets[label]),
                precision50=curve.tolist() if (curve > -1).any() else None))
        return DetectionReport(
            class_names=list(self.class_names), num_images=len(images),
            num_gt=sum(c.num_gt for c in per_class), num_dets=sum(c.num_dets for c in per_class),
            max_dets=self.max_dets, stats=stats, per_class=per_class,
            recall_points=[float(r) for r in params.recThrs], skipped=list(skipped), meta=dict(meta or {}))


def _mean(values: np.ndarray) -> float | None:
    """pycocotools' summary of a slice of its precision / recall arrays (-1 = undefined), in percent."""
    valid = values[values > -1]
    return 100.0 * float(np.mean(valid)) if valid.size else None


def _coco_dicts(images: Sequence[Mapping[str, Any]], class_names: Sequence[str],
               category_ids: Sequence[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The COCO ground-truth dataset and the results list (``xywh`` boxes, ids from 1) of evaluator records."""
    gt: dict[str, Any] = {"images": [], "annotations": [],
                          "categories": [{"id": c, "name": n} for c, n in zip(category_ids, class_names)]}
    results: list[dict[str, Any]] = []
    for r in images:
        image_id = r["image_id"]
        gt["images"].append({"id": image_id, "height": r["orig_size"][0], "width": r["orig_size"][1]})
        for (x1, y1, x2, y2), label, crowd in zip(r["gt_boxes"].tolist(), r["gt_labels"].tolist(),
                                                  r["gt_iscrowd"].tolist()):
            # ids start at 1: pycocotools records a match by the ground truth's id, and 0 means "unmatched"
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id,
                                      "category_id": category_ids[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                      "area": (x2 - x1) * (y2 - y1), "iscrowd": int(crowd)})
        for (x1, y1, x2, y2), score, label in zip(r["boxes"].tolist(), r["scores"].tolist(), r["labels"].tolist()):
            results.append({"image_id": image_id, "category_id": category_ids[label],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    return gt, results


def _run_cocoeval(gt: dict[str, Any], results: list[dict[str, Any]],
                  max_dets: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """``COCOeval(..., "bbox")`` evaluated and accumulated, its prints silenced: (precision (T, R, K, A, M),
    recall (T, K, A, M), params)."""
    coco = require("pycocotools.coco", "detection")
    cocoeval = require("pycocotools.cocoeval", "detection")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco.COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes reads results[0]: build the empty result set it would have made
            coco_dt = coco.COCO()
            coco_dt.dataset = {"images": list(gt["images"]), "categories": copy.deepcopy(gt["categories"]),
                               "annotations": []}
            coco_dt.createIndex()
        evaluator = cocoeval.COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.params.maxDets = [1, 10, max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator.eval["precision"], evaluator.eval["recall"], evaluator.params


# ---------------------------------------------------------------------------------------------------------
# plots


def plot_pr_curves(report: DetectionReport, path: str | os.PathLike[str]) -> Path:
    """Precision-recall at IoU 0.5 of every class with ground truth, and their mean (whose area is AP50)."""
    require("matplotlib", "report")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    recall = np.asarray(report.recall_points)
    curves = [(c, np.asarray(c.precision50)) for c in report.per_class if c.precision50 is not None]
    labelled = len(curves) <= 20  # a legend of 80 COCO classes says nothing
    fig = Figure(figsize=(8 if labelled else 6, 5))
    FigureCanvasAgg(fig)  # a private canvas: no pyplot state, no GUI backend
    ax = fig.subplots()
    for c, precision in curves:
        ax.plot(recall, precision, lw=1, alpha=0.8 if labelled else 0.3,
                label=f"{c.name} ({c.ap50:.1f})" if labelled else None)
    if curves:
        ax.plot(recall, np.mean([p for _, p in curves], axis=0), "k", lw=2.5,
                label=f"mean (AP50 {_fmt(report.stats['map50'])})")
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7, frameon=False)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"precision-recall at IoU 0.5 ({len(curves)} classes with ground truth)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
