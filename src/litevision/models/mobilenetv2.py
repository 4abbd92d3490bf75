"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).

https://arxiv.org/abs/1801.04381 — seed 001. Width multiplier α scales every layer's channels with the
papers' rounding to multiples of 8 (as torchvision/timm); the last 1x1 conv keeps 1280 channels for
α < 1. Weights of torchvision ``mobilenet_v2`` and timm ``mobilenetv2_100`` load directly (same tensors
in the same order); only α = 1.0 has such references.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from litevision.layers import ClassifierHead, ConvNormAct, InvertedResidual, drop_path_rates, make_divisible
from litevision.layers.helpers import init_weights
from litevision.models._builder import Variant, register_family
from litevision.models._card import Paper, PaperFigures
from litevision.models._contract import LiteModel, feature
from litevision.modules import create_module


@dataclass(frozen=True)
class BlockRow:
    """One row of the paper's Table 2: ``repeats`` blocks with expansion ``exp_ratio`` and ``out_chs``."""

    exp_ratio: int
    out_chs: int
    repeats: int
    stride: int


PAPER_ROWS = (
    BlockRow(1, 16, 1, 1),
    BlockRow(6, 24, 2, 2),
    BlockRow(6, 32, 3, 2),
    BlockRow(6, 64, 4, 2),
    BlockRow(6, 96, 3, 1),
    BlockRow(6, 160, 3, 2),
    BlockRow(6, 320, 1, 1),
)


@dataclass(frozen=True)
class MobileNetV2Cfg:
    width_mult: float = 1.0
    rows: tuple[BlockRow, ...] = PAPER_ROWS
    stem_chs: int = 32
    head_chs: int = 1280


class MobileNetV2(LiteModel):
    def __init__(
        self,
        cfg: MobileNetV2Cfg,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        act_layer: str = "relu6",
        attn: str | None = None,
        attn_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """``attn`` names a registered plug-in module placed in every inverted residual after the depthwise
        conv (where MobileNetV3/MnasNet put SE and the ECA/CBAM papers put their modules)."""
        super().__init__()
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        chs = lambda c: make_divisible(c * cfg.width_mult, 8)  # noqa: E731
        in_chs = chs(cfg.stem_chs)
        self.stem = ConvNormAct(in_chans, in_chs, 3, stride=2, act_layer=act_layer)
        # group rows into one stage per output stride, so feature_info has one entry per reduction
        dprs = iter(sum(drop_path_rates(drop_path_rate, [r.repeats for r in cfg.rows]), []))
        se_layer = None
        if attn is not None:
            se_layer = partial(_attn_layer, attn, dict(attn_kwargs or {}))
        stages: list[list[nn.Module]] = [[]]
        self.feature_info, reduction = [], 2
        for i, row in enumerate(cfg.rows):
            if row.stride > 1 and stages[-1]:
                self.feature_info.append(feature(in_chs, reduction, f"stages.{len(stages) - 1}"))
                stages.append([])
            reduction *= row.stride
            out_chs = chs(row.out_chs)
            for j in range(row.repeats):
                stages[-1].append(InvertedResidual(
                    in_chs, out_chs, in_chs * row.exp_ratio, 3, row.stride if j == 0 else 1, act_layer=act_layer,
                    se_layer=se_layer, drop_path_rate=next(dprs)))
                in_chs = out_chs
            if i == len(cfg.rows) - 1:
                self.feature_info.append(feature(in_chs, reduction, f"stages.{len(stages) - 1}"))
        self.stages = nn.Sequential(*[nn.Sequential(*s) for s in stages])
        head_chs = make_divisible(cfg.head_chs * max(1.0, cfg.width_mult), 8)
        self.neck = ConvNormAct(in_chs, head_chs, 1, act_layer=act_layer)
        self.num_features = head_chs
        self.head = ClassifierHead(head_chs, num_classes, drop_rate=drop_rate)
        init_weights(self)


def _attn_layer(name: str, kwargs: dict[str, Any], chs: int, in_chs: int) -> nn.Module:
    return create_module(name, chs, **kwargs)


def _row(width_mult: float, params_m: float, macs_g: float, top1: float, **kwargs: object) -> Variant:
    return Variant(cfg=MobileNetV2Cfg(width_mult=width_mult),
                   figures=PaperFigures(params_m=params_m, macs_g=macs_g, top1=top1), **kwargs)


# paper Table 6 / the released checkpoints
VARIANTS: dict[str, Variant] = {
    "mobilenetv2_035": _row(width_mult=0.35, params_m=1.66, macs_g=0.059, top1=60.3),
    "mobilenetv2_050": _row(width_mult=0.50, params_m=1.95, macs_g=0.097, top1=65.4),
    "mobilenetv2_075": _row(width_mult=0.75, params_m=2.61, macs_g=0.209, top1=69.8),
    "mobilenetv2_100": _row(width_mult=1.00, params_m=3.50, macs_g=0.300, top1=72.0,
                            reference=("torchvision:mobilenet_v2", "timm:mobilenetv2_100")),
    "mobilenetv2_140": _row(width_mult=1.40, params_m=6.11, macs_g=0.585, top1=74.7),
}

register_family(
    "mobilenetv2", MobileNetV2, VARIANTS,
    paper=Paper(title="MobileNetV2: Inverted Residuals and Linear Bottlenecks",
                url="https://arxiv.org/abs/1801.04381", venue="CVPR 2018"),
    notes="paper params column rounds 3.47M to 3.4M; the released checkpoints' counts are used",
)
