"""Hyperspectral patch classification (HybridSN's task): every labelled pixel of a scene is classified from
its neighbourhood in the PCA-reduced cube. Trained like classification; reported the remote-sensing way, as
overall / average accuracy and Cohen's kappa, with the classification map of the whole scene."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from litevision.engine.hsi_metrics import HSIReport, label_map, save_classification_maps
from litevision.engine.inference import predict_logits
from litevision.engine.tasks.base import Report, register_task
from litevision.engine.tasks.classification import ClassificationTask, LogitsEvaluator
from litevision.errors import UserError


class HSIEvaluator(LogitsEvaluator):
    def compute(self, *, meta: Mapping[str, Any] | None = None, skipped: Sequence[str] = ()) -> HSIReport:
        logits, targets = self.state()
        if not len(targets):
            raise UserError("nothing to evaluate: the evaluation set is empty")
        return HSIReport.from_predictions(targets.numpy(), logits.argmax(1).numpy(), self.class_names, meta=meta)


@register_task
class HyperspectralTask(ClassificationTask):
    """Hyperspectral scene classification from pixel patches (OA / AA / kappa, classification map)."""

    name = "hyperspectral"
    primary_metric = "oa"
    logged_metrics = ("oa", "aa", "kappa")

    def model_kwargs(self) -> dict[str, Any]:
        """The patch's spectral depth and side, which size HybridSN's layers."""
        extra = self.bundle.extra
        if "n_components" not in extra or "patch_size" not in extra:
            return {}
        return {"bands": int(extra["n_components"]), "patch_size": int(extra["patch_size"])}

    def chance_level(self) -> float:
        return 1.0 / max(self.num_classes, 1)  # OA is a fraction

    def evaluator(self, **options: Any) -> HSIEvaluator:
        unknown = [k for k, v in options.items() if v is not None]
        if unknown:
            raise UserError(f"the hyperspectral task has no option {unknown[0]!r}")
        return HSIEvaluator(self.class_names)

    def visualize(self, model: nn.Module, report: Report, out_dir: Path, *,
                  device: torch.device) -> dict[str, Path]:
        """Ground truth next to the predicted classes of every labelled pixel (training pixels predicted too)."""
        extra = self.bundle.extra
        if "scene_shape" not in extra:
            return {}
        pred = [predict_logits(model, ds, device=device).argmax(1).numpy() for ds in (self.bundle.train,
                                                                                      self.bundle.test)]
        positions = np.concatenate([extra["train_positions"], extra["test_positions"]])
        predicted = label_map(extra["scene_shape"], positions, np.concatenate(pred))
        split = extra.get("split", {}).get("split", "")
        title = (f"{report.meta.get('model', 'model')}, {extra.get('scene', 'scene')}, {split} split: "
                 f"OA {100 * report.metrics()['oa']:.2f}%")
        path = save_classification_maps(Path(out_dir) / "class_map.png", extra["ground_truth"], predicted,
                                        self.class_names, title)
        return {"class_map": path}
