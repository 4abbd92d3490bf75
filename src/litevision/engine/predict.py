"""Predictions of trained weights on image files: classes for a classifier, boxes for a detector.

``predict_images(weights, files)`` reads each image, applies the model's own evaluation preprocessing (from
the weights' metadata) and returns one :class:`ImagePrediction` per file. For detectors the boxes are in the
original image's pixels, ready to draw (:func:`save_drawings`) or to write as COCO results
(:func:`coco_results`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from litevision.data import build_detection_transform, build_eval_transform, make_target
from litevision.engine.draw import draw_detections
from litevision.errors import UserError
from litevision.models import data_config_from_metadata, load_trained_model
from litevision.utils import atomic_write_text


@dataclass
class ImagePrediction:
    """One image's prediction: ``classes`` (name, probability) best first, or ``boxes`` / ``scores`` /
    ``labels`` (original-image pixels, ``xyxy``) for a detector."""

    file: str
    size: tuple[int, int]  # (height, width) of the original image
    classes: list[tuple[str, float]] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    label_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "height": self.size[0], "width": self.size[1]}
        if self.classes:
            d["classes"] = [{"label": n, "probability": round(p, 6)} for n, p in self.classes]
        else:
            d["detections"] = [{"label": n, "score": round(s, 6), "box_xyxy": [round(v, 2) for v in b]}
                               for n, s, b in zip(self.labels, self.scores, self.boxes)]
        return d


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"{path}: no such image file") from None
    except Exception as e:  # PIL.UnidentifiedImageError, truncated files, ...
        raise UserError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


@torch.no_grad()
def predict_images(weights: str | os.PathLike[str], files: Sequence[str | os.PathLike[str]], *,
                   score_thresh: float | None = None, top_k: int = 5, device: str = "cpu") -> list[ImagePrediction]:
    """Run the model saved in ``weights`` (a run folder or a weights file of ``litevision train``) on ``files``.

    Every file is opened first, so a missing or unreadable image is reported before any work. Detectors keep
    the boxes scoring at least ``score_thresh`` (default: the model's own post-processing threshold);
    classifiers give their ``top_k`` classes.
    """
    paths = [Path(f) for f in files]
    images = [_open(p) for p in paths]
    model, meta = load_trained_model(weights)
    model = model.to(device).eval()
    cfg = data_config_from_metadata(meta)
    names = list(meta.get("class_names") or [str(i) for i in range(int(meta["num_classes"]))])
    detector = meta.get("task") == "detection" or getattr(model, "task", "") == "detection"
    out = []
    if detector:
        if score_thresh is not None:  # also below the model's own threshold
            model.set_postprocess(score_thresh=score_thresh)
        transform = build_detection_transform(cfg, None)
        for path, img in zip(paths, images):
            x, target = transform(img, make_target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), image_id=0))
            det = model(x[None].to(device))[0]
            keep = det["scores"] >= model.post.score_thresh
            h, w = img.height, img.width
            scale = torch.tensor([w / x.shape[-1], h / x.shape[-2], w / x.shape[-1], h / x.shape[-2]])
            boxes = (det["boxes"][keep].cpu() * scale).tolist()
            ids = det["labels"][keep].cpu().tolist()
            out.append(ImagePrediction(str(path), (h, w), boxes=boxes, scores=det["scores"][keep].cpu().tolist(),
                                       labels=[names[i] for i in ids], label_ids=ids))
        return out
    transform = build_eval_transform(cfg)
    for path, img in zip(paths, images):
        logits = model(transform(img)[None].to(device))
        logits = (sum(logits) / len(logits)) if isinstance(logits, tuple | list) else logits
        probs = logits.softmax(-1)[0].cpu()
        top = probs.topk(min(top_k, probs.numel()))
        out.append(ImagePrediction(str(path), (img.height, img.width),
                                   classes=[(names[i], float(p)) for p, i in zip(top.values, top.indices)]))
    return out


def coco_results(predictions: Sequence[ImagePrediction], category_ids: Sequence[int] | None = None
                 ) -> list[dict[str, Any]]:
    """Detections in the COCO results format (``image_id`` = the file's position, ``bbox`` = x, y, w, h in
    pixels, ``category_id`` from ``category_ids`` or label + 1); ``file_name`` added for reference."""
    rows = []
    for image_id, p in enumerate(predictions):
        for box, score, label in zip(p.boxes, p.scores, p.label_ids):
            x1, y1, x2, y2 = box
            rows.append({"image_id": image_id, "file_name": Path(p.file).name,
                         "category_id": int(category_ids[label]) if category_ids else label + 1,
                         "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                         "score": round(score, 6)})
    return rows


def save_drawings(predictions: Sequence[ImagePrediction], out_dir: str | os.PathLike[str],
                  class_names: Sequence[str]) -> list[Path]:
    """Each image with its predicted boxes drawn (coloured by class, tagged with class and score), as
    ``<out_dir>/<stem>.png`` (``<stem>_<n>.png`` when two inputs share a stem)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, seen = [], set()
    for p in predictions:
        stem = Path(p.file).stem
        name = stem if stem not in seen else f"{stem}_{len(seen)}"
        seen.add(name)
        img = _open(Path(p.file))
        drawn = draw_detections(img, torch.tensor(p.boxes).reshape(-1, 4),
                                torch.tensor(p.label_ids, dtype=torch.int64), torch.tensor(p.scores), class_names)
        path = out / f"{name}.png"
        drawn.save(path)
        written.append(path)
    return written


def write_predictions(predictions: Sequence[ImagePrediction], path: str | os.PathLike[str]) -> Path:
    """Every prediction as JSON (``to_dict`` of each), written atomically."""
    return atomic_write_text(Path(path), json.dumps([p.to_dict() for p in predictions], indent=2))
