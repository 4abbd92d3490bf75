"""Measured params/MACs of registered models next to their papers' figures."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from litevision.bench.complexity import Complexity, count_complexity
from litevision.layers import fuse_model
from litevision.models import create_model, get_model_card


@dataclass(frozen=True)
class ModelRow:
    name: str
    input_size: tuple[int, int, int]
    params_m: float
    macs_g: float
    paper_params_m: float | None
    paper_macs_g: float | None
    paper_top1: float | None

    @property
    def params_diff_pct(self) -> float | None:
        return _pct(self.params_m, self.paper_params_m)

    @property
    def macs_diff_pct(self) -> float | None:
        return _pct(self.macs_g, self.paper_macs_g)


def _pct(ours: float, paper: float | None) -> float | None:
    return None if not paper else 100.0 * (ours - paper) / paper


def measure_model(name: str) -> ModelRow:
    """Params and MACs at the card's input size (1000 classes); params after fusion if the paper does so.

    The model is built on the ``meta`` device first (shapes only, no arithmetic: fast even for
    EfficientNet-B7 at 600 px); models whose forward needs real values fall back to the CPU.
    """
    card = get_model_card(name)
    kwargs = {"num_classes": card.extra.get("paper_num_classes", 1000), "in_chans": card.input_size[0]}
    fused, paper = card.figures.params_fused, card.figures
    try:
        with torch.device("meta"):
            c = _complexity(name, fused, card.input_size, kwargs)
    except Exception:  # data-dependent control flow or an op without a meta kernel
        c = _complexity(name, fused, card.input_size, kwargs)
    return ModelRow(name, card.input_size, c.params / 1e6, c.macs / 1e9, paper.params_m, paper.macs_g, paper.top1)


def _complexity(name: str, fused: bool, input_size: tuple[int, ...], kwargs: dict) -> Complexity:
    model = create_model(name, **kwargs)
    if fused:
        fuse_model(model)
    return count_complexity(model, input_size)
