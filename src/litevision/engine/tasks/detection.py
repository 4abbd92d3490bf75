"""Object detection: a detector's own losses in training (it takes the targets), COCO metrics by pycocotools
in evaluation (mAP@[.5:.95], AP50, AP75, AP by object size, per-class AP, PR curves), and a grid of test
images with predicted and true boxes.

Samples are ``(image, target)`` with the target a dict (``boxes`` ``xyxy`` in input pixels, ``labels``,
``iscrowd``, ``image_id``, ``orig_size``), batched as a stacked image tensor and a list of targets; the
evaluator scales boxes back to each original image before computing the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from litevision.data import (
    AugmentConfig,
    detection_collate,
    detection_eval_dataset,
    detection_train_dataset,
)
from litevision.engine.detection_metrics import DetectionEvaluator, DetectionReport
from litevision.engine.draw import denormalize, detection_grid
from litevision.engine.tasks.base import Report, Task, register_task
from litevision.errors import UserError

__all__ = ["DetectionEvaluator", "DetectionReport", "DetectionTask", "detection_loss"]

log = logging.getLogger(__name__)
GRID_IMAGES = 16


def detection_loss(inputs: Tensor, outputs: Mapping[str, Tensor], targets: Any) -> Tensor:
    """A detector in training mode returns its losses by name; the training loss is their sum."""
    return sum(outputs.values())  # type: ignore[return-value]


@register_task
class DetectionTask(Task):
    """Object detection (COCO mAP@[.5:.95], AP50, AP75, AP by size, per-class AP, PR curves, box grid)."""

    name = "detection"
    primary_metric = "map"
    logged_metrics = ("map", "map50")

    def train_dataset(self, aug: AugmentConfig, *, seed: int) -> Dataset:
        return detection_train_dataset(self.bundle, self.data_config, aug, seed=seed)

    def eval_dataset(self, split: str) -> Dataset:
        return detection_eval_dataset(self.bundle, self.data_config, split)

    def collate(self, samples: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        return detection_collate(samples)

    def targets_to(self, targets: Any, device: torch.device) -> Any:
        return [{k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in t.items()}
                for t in targets]

    def forward_train(self, model: nn.Module, inputs: Tensor, targets: Any) -> Any:
        return model(inputs, targets)

    def criterion(self, aug: AugmentConfig, teacher: nn.Module | None, distill: Any) -> Callable[..., Tensor]:
        if getattr(distill, "type", "none") != "none":
            raise UserError("distill.type must be none for detection: distillation is implemented for "
                            "classification (logits) only")
        if aug.mixup > 0 or aug.cutmix > 0:
            raise UserError("aug.mixup / aug.cutmix mix labels of whole images and do not apply to detection; "
                            "set them to 0")
        return detection_loss

    def chance_level(self) -> float:
        return 0.0  # a detector that learned nothing finds no object: mAP 0

    def evaluator(self, **options: Any) -> DetectionEvaluator:
        unknown = [k for k, v in options.items() if v is not None]
        if unknown:
            raise UserError(f"the detection task has no evaluation option {unknown[0]!r}")
        return DetectionEvaluator(self.class_names, tuple(self.data_config.input_size[1:]),
                                  category_ids=self.bundle.extra.get("category_ids"))

    def visualize(self, model: nn.Module, report: Report, out_dir: Path, *,
                  device: torch.device) -> dict[str, Path]:
        """The first test images with predicted (score >= 0.3) and true boxes."""
        data = self.eval_dataset(report.meta.get("split", "test") if report.meta.get("split") != "train" else "test")
        images, preds, truths = [], [], []
        was_training = model.training
        model.eval()
        try:
            for i in range(min(GRID_IMAGES, len(data))):
                sample = data[i]
                if not isinstance(sample, tuple):  # an unreadable image
                    continue
                x, target = sample
                with torch.no_grad():
                    det = model(x[None].to(device))[0]
                keep = det["scores"] >= 0.3
                images.append(denormalize(x, self.data_config.mean, self.data_config.std))
                preds.append({k: v[keep].cpu() for k, v in det.items()})
                truths.append({"boxes": target["boxes"], "labels": target["labels"]})
        finally:
            model.train(was_training)
        if not images:
            return {}
        path = detection_grid(images, preds, truths, self.class_names, path=Path(out_dir) / "detections.png")
        return {"detections": path}

