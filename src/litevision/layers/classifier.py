"""Classifier head: global pool -> [hidden FC + act] -> dropout -> FC."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from litevision.layers.helpers import create_act


class ClassifierHead(nn.Module):
    """Pools (N, C, H, W) features to (N, C) and classifies them.

    ``hidden_features`` adds the extra FC + activation of MobileNetV3 (960 -> 1280); the pre-logits width
    (``num_features``) is then ``hidden_features``. ``num_classes=0`` removes the final FC.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden_features: int | None = None,
        act_layer: str | Callable[..., nn.Module] = "relu",
        drop_rate: float = 0.0,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        if pool not in ("avg", "max", ""):
            raise ValueError(f"pool must be 'avg', 'max' or '' (none), got {pool!r}")
        self.pool_type = pool
        self.in_features = in_features
        self.num_features = hidden_features or in_features
        self.hidden = nn.Linear(in_features, hidden_features) if hidden_features else nn.Identity()
        self.act = create_act(act_layer) if hidden_features else nn.Identity()
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.num_classes = num_classes
        device = self.hidden.weight.device if isinstance(self.hidden, nn.Linear) else None
        self.fc = nn.Linear(self.num_features, num_classes, device=device) if num_classes > 0 else nn.Identity()

    def pool(self, x: Tensor) -> Tensor:
        if x.ndim == 2 or not self.pool_type:
            return x.flatten(1)
        if self.pool_type == "max":
            return torch.amax(x, dim=(2, 3))
        return x.mean((2, 3))

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.act(self.hidden(self.pool(x)))
        x = self.drop(x)
        return x if pre_logits else self.fc(x)
