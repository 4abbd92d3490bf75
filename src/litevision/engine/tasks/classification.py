"""Image classification: cross-entropy with label smoothing, mixup / cutmix and DeiT-style distillation;
top-1 / top-5, per-class precision / recall / F1, the confusion matrix and the two-class threshold report."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.data import AugmentConfig
from litevision.engine.metrics import EvalReport, ThresholdOptions, compute_report
from litevision.engine.tasks.base import Evaluator, Task, register_task
from litevision.errors import UserError

DISTILL_TYPES = ("none", "hard", "soft")


class DistillationLoss(nn.Module):
    """Task loss plus optional DeiT-style distillation from a frozen teacher.

    A model that returns ``(class_logits, distill_logits)`` in training (distilled LSNet / DeiT variants)
    gets the class loss on the first and the distillation loss on the second; other models get both on
    their single output. ``hard``: cross-entropy to the teacher's argmax; ``soft``: KL divergence at
    temperature ``tau``. Total = (1 - alpha) * class loss + alpha * distillation loss.
    """

    def __init__(self, base: nn.Module, teacher: nn.Module | None = None, kind: str = "none", alpha: float = 0.5,
                 tau: float = 1.0) -> None:
        super().__init__()
        if kind not in DISTILL_TYPES:
            raise UserError(f"distill.type must be none, hard or soft, not {kind!r}")
        if kind != "none" and teacher is None:
            raise UserError(f"distill.type={kind} needs distill.teacher")
        self.base, self.kind, self.alpha, self.tau = base, kind, alpha, tau
        self.teacher = teacher

    def forward(self, inputs: Tensor, outputs: Tensor | tuple[Tensor, Tensor], targets: Tensor) -> Tensor:
        if isinstance(outputs, tuple | list):
            cls_out, dist_out = outputs[0], outputs[1]
        else:
            cls_out = dist_out = outputs
        loss = self.base(cls_out, targets)
        if self.kind == "none":
            if dist_out is not cls_out:
                loss = (loss + self.base(dist_out, targets)) / 2
            return loss
        with torch.no_grad():
            t = self.teacher(inputs)
            t = (sum(t) / len(t)) if isinstance(t, tuple | list) else t
        if self.kind == "hard":
            kd = F.cross_entropy(dist_out, t.argmax(dim=1))
        else:
            kd = F.kl_div(F.log_softmax(dist_out / self.tau, dim=1), F.log_softmax(t / self.tau, dim=1),
                          reduction="sum", log_target=True) * (self.tau ** 2) / dist_out.numel()
        return loss * (1 - self.alpha) + kd * self.alpha


class LogitsEvaluator(Evaluator):
    """Collects (N, C) logits and integer targets; subclasses turn them into their report."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.logits: list[Tensor] = []
        self.targets: list[Tensor] = []

    def update(self, outputs: Tensor, targets: Tensor) -> None:
        self.logits.append(outputs.detach().float().cpu())
        self.targets.append(torch.as_tensor(targets).cpu().long())

    def state(self) -> tuple[Tensor, Tensor]:
        if not self.logits:
            return torch.zeros(0, len(self.class_names)), torch.zeros(0, dtype=torch.long)
        return torch.cat(self.logits), torch.cat(self.targets)

    def merge(self, states: Sequence[tuple[Tensor, Tensor]]) -> None:
        self.logits = [s[0] for s in states]
        self.targets = [s[1] for s in states]


class ClassificationEvaluator(LogitsEvaluator):
    def __init__(self, class_names: Sequence[str], threshold: ThresholdOptions | None = None) -> None:
        super().__init__(class_names)
        self.threshold = threshold

    def compute(self, *, meta: Mapping[str, Any] | None = None, skipped: Sequence[str] = ()) -> EvalReport:
        logits, targets = self.state()
        if not len(targets):
            raise UserError("nothing to evaluate: every sample was unreadable or the set is empty")
        return compute_report(logits, targets, self.class_names, threshold=self.threshold, meta=dict(meta or {}),
                              skipped=skipped)


@register_task
class ClassificationTask(Task):
    """Image classification (top-1 / top-5, per-class precision and recall, threshold report)."""

    name = "classification"
    primary_metric = "top1"
    logged_metrics = ("top1", "top5", "loss")

    def batch_transform(self, aug: AugmentConfig) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
        if aug.mixup <= 0 and aug.cutmix <= 0:
            return None
        from timm.data import Mixup

        return Mixup(mixup_alpha=aug.mixup, cutmix_alpha=aug.cutmix, prob=aug.mixup_prob,
                     switch_prob=aug.mixup_switch_prob, mode=aug.mixup_mode, label_smoothing=aug.smoothing,
                     num_classes=self.num_classes)

    def criterion(self, aug: AugmentConfig, teacher: nn.Module | None, distill: Any) -> nn.Module:
        if aug.mixup > 0 or aug.cutmix > 0:
            from timm.loss import SoftTargetCrossEntropy

            base: nn.Module = SoftTargetCrossEntropy()  # mixup makes soft targets (smoothing included)
        else:
            base = nn.CrossEntropyLoss(label_smoothing=aug.smoothing)
        return DistillationLoss(base, teacher, distill.type, distill.alpha, distill.tau)

    def evaluator(self, *, threshold: ThresholdOptions | None = None) -> ClassificationEvaluator:
        return ClassificationEvaluator(self.class_names, threshold)
