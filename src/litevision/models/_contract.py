"""The model contract every registered model implements, and the features-only wrapper.

Contract (timm-compatible names): ``forward``, ``forward_features`` (last feature map),
``forward_head(x, pre_logits=False)``, ``reset_classifier(num_classes)``, ``num_classes``,
``num_features`` (pre-logits width), ``in_chans``, ``feature_info`` (one dict per stage output with
``num_chs``, ``reduction`` and ``module``), and ``forward_intermediates`` used by features-only mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn


def feature(num_chs: int, reduction: int, module: str) -> dict[str, Any]:
    return {"num_chs": num_chs, "reduction": reduction, "module": module}


class LiteModel(nn.Module):
    """Base class: a stem, a sequence of stages, an optional neck and a classifier head.

    Families whose checkpoint layout needs other attribute names override ``forward_intermediates``
    and ``forward_features``; the defaults run ``self.stem``, each of ``self.stages`` and ``self.neck``.
    """

    num_classes: int
    num_features: int
    in_chans: int
    drop_rate: float
    feature_info: list[dict[str, Any]]
    head: nn.Module

    def stage_list(self) -> Sequence[nn.Module]:
        return list(self.stages)  # type: ignore[attr-defined]

    def forward_intermediates(self, x: Tensor, indices: Sequence[int] | None = None) -> list[Tensor]:
        """Outputs of the stages listed in ``feature_info`` (all, or those in ``indices``)."""
        stages = self.stage_list()
        wanted = set(range(len(stages)) if indices is None else indices)
        last = max(wanted)
        x = self.stem(x)  # type: ignore[attr-defined]
        outs = []
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in wanted:
                outs.append(x)
            if i == last:
                break
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # type: ignore[attr-defined]
        for stage in self.stage_list():
            x = stage(x)
        return self.neck(x) if hasattr(self, "neck") else x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc  # type: ignore[return-value]

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)  # type: ignore[operator]
        self.num_classes = num_classes


class FeatureExtractor(nn.Module):
    """Features-only view of a model: returns the list of stage outputs chosen by ``out_indices``.

    Negative indices count from the last stage. Only the stages needed are run; the head is dropped.
    """

    def __init__(self, model: LiteModel, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        n = len(model.feature_info)
        indices = list(range(n)) if out_indices is None else [i % n if -n <= i < n else i for i in out_indices]
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise ValueError(f"out_indices {list(out_indices or [])} out of range for {n} feature stages")
        model.reset_classifier(0)
        self.model = model
        self.out_indices = tuple(indices)
        self.feature_info = [model.feature_info[i] for i in indices]
        self.card = getattr(model, "card", None)
        self.pretrained_cfg = getattr(model, "pretrained_cfg", None)
        self.in_chans = model.in_chans

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self.feature_info]

    def reductions(self) -> list[int]:
        return [f["reduction"] for f in self.feature_info]

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.model.forward_intermediates(x, self.out_indices)
