"""EfficientNet B0-B7 (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
ICML 2019).

https://arxiv.org/abs/1905.11946 — seed 003. B0 (paper Table 1) is typed once: a 3x3 stride-2 stem (32),
seven rows of MBConv blocks (inverted residual with squeeze-excitation reducing to 1/4 of the block's *input*
channels, SiLU, stochastic depth "drop connect" on the residuals), a 1x1 conv to 1280, pooling, dropout and
the classifier. B1-B7 are *computed* from B0 by compound scaling: every width (stem, rows, head) becomes
``make_divisible(w * channels, 8)``, every row's depth ``ceil(d * repeats)``, and the input is ``r`` pixels.

Where (w, d, r) come from. The paper's rule is ``d = α^φ, w = β^φ, r = γ^φ`` with α = 1.2, β = 1.1,
γ = 1.15 (found by grid search at φ = 1, :func:`compound_coefficients`). The released B1-B7 do *not* use
these values for integer φ: they use the hand-set per-model coefficients of the authors' code (table
``RELEASED_SCALING``), e.g. B1 = (w 1.0, d 1.1, r 240) where the rule gives (1.1, 1.2, 258), and B7 =
(2.0, 3.1, 600) where it gives (1.95, 3.58, 595). No single φ per model reproduces all three (B7's depth
needs φ ≈ 6.2, its width φ ≈ 7.3), and only the released coefficients reproduce the paper's parameter and
MAC figures, so the registered variants use them; the rule stays available to build new scalings.

BatchNorm eps follows the torchvision checkpoints (1e-5 for B0-B4, 1e-3 for B5-B7; override ``bn_eps``);
timm's ``efficientnet_b*`` use 1e-5. Weights of torchvision ``efficientnet_b0`` ... ``b7`` and timm
``efficientnet_b*`` load by position (same tensors in the same order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from torch import nn

from litevision.layers import (
    ClassifierHead,
    ConvNormAct,
    InvertedResidual,
    SqueezeExcite,
    drop_path_rates,
    make_divisible,
)
from litevision.layers.helpers import init_weights
from litevision.models._builder import Variant, register_family
from litevision.models._card import DataConfig, Paper, PaperFigures
from litevision.models._contract import LiteModel, feature


@dataclass(frozen=True)
class MBConvRow:
    """One row of paper Table 1: ``repeats`` MBConv blocks; the first has ``stride``."""

    exp_ratio: int
    kernel_size: int
    stride: int
    out_chs: int
    repeats: int


B0_ROWS = (
    MBConvRow(exp_ratio=1, kernel_size=3, stride=1, out_chs=16, repeats=1),
    MBConvRow(exp_ratio=6, kernel_size=3, stride=2, out_chs=24, repeats=2),
    MBConvRow(exp_ratio=6, kernel_size=5, stride=2, out_chs=40, repeats=2),
    MBConvRow(exp_ratio=6, kernel_size=3, stride=2, out_chs=80, repeats=3),
    MBConvRow(exp_ratio=6, kernel_size=5, stride=1, out_chs=112, repeats=3),
    MBConvRow(exp_ratio=6, kernel_size=5, stride=2, out_chs=192, repeats=4),
    MBConvRow(exp_ratio=6, kernel_size=3, stride=1, out_chs=320, repeats=1),
)


@dataclass(frozen=True)
class CompoundScaling:
    """Width and depth multipliers, input resolution and classifier dropout of one scaled model."""

    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float


def compound_coefficients(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> CompoundScaling:
    """The paper's rule (Eq. 3): depth α^φ, width β^φ, resolution 224·γ^φ (dropout kept at B0's 0.2).

    The released B1-B7 deviate from it (see the module docstring and ``RELEASED_SCALING``).
    """
    return CompoundScaling(width_mult=beta**phi, depth_mult=alpha**phi, resolution=round(224 * gamma**phi),
                           dropout=0.2)


# φ -> the coefficients of the authors' released code (efficientnet_builder.py), used by torchvision and timm
RELEASED_SCALING: dict[int, CompoundScaling] = {
    0: CompoundScaling(width_mult=1.0, depth_mult=1.0, resolution=224, dropout=0.2),
    1: CompoundScaling(width_mult=1.0, depth_mult=1.1, resolution=240, dropout=0.2),
    2: CompoundScaling(width_mult=1.1, depth_mult=1.2, resolution=260, dropout=0.3),
    3: CompoundScaling(width_mult=1.2, depth_mult=1.4, resolution=300, dropout=0.3),
    4: CompoundScaling(width_mult=1.4, depth_mult=1.8, resolution=380, dropout=0.4),
    5: CompoundScaling(width_mult=1.6, depth_mult=2.2, resolution=456, dropout=0.4),
    6: CompoundScaling(width_mult=1.8, depth_mult=2.6, resolution=528, dropout=0.5),
    7: CompoundScaling(width_mult=2.0, depth_mult=3.1, resolution=600, dropout=0.5),
}


@dataclass(frozen=True)
class EfficientNetCfg:
    rows: tuple[MBConvRow, ...] = B0_ROWS
    stem_chs: int = 32
    head_chs: int = 1280
    dropout: float = 0.2
    bn_eps: float = 1e-5


def scale_cfg(base: EfficientNetCfg, scaling: CompoundScaling) -> EfficientNetCfg:
    """Apply compound scaling to a base network: widths rounded to multiples of 8, depths rounded up."""
    chs = lambda c: make_divisible(c * scaling.width_mult, 8)  # noqa: E731
    rows = tuple(replace(r, out_chs=chs(r.out_chs), repeats=math.ceil(r.repeats * scaling.depth_mult))
                 for r in base.rows)
    return replace(base, rows=rows, stem_chs=chs(base.stem_chs), head_chs=chs(base.head_chs),
                   dropout=scaling.dropout)


def _se_layer(block_chs: int, block_in_chs: int) -> nn.Module:
    return SqueezeExcite(block_chs, rd_channels=max(1, block_in_chs // 4), act_layer="silu", gate_layer="sigmoid")


class EfficientNet(LiteModel):
    """Stem, MBConv rows grouped into one stage per output stride (2 ... 32), 1x1 head conv as the neck."""

    def __init__(
        self,
        cfg: EfficientNetCfg,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float = 0.2,
        bn_eps: float | None = None,
    ) -> None:
        super().__init__()
        drop_rate = cfg.dropout if drop_rate is None else drop_rate
        bn_eps = cfg.bn_eps if bn_eps is None else bn_eps
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        in_chs = cfg.stem_chs
        self.stem = ConvNormAct(in_chans, in_chs, 3, stride=2, act_layer="silu", bn_eps=bn_eps)
        dprs = iter(sum(drop_path_rates(drop_path_rate, [r.repeats for r in cfg.rows]), []))
        stages: list[list[nn.Module]] = [[]]
        self.feature_info, reduction = [], 2
        for row in cfg.rows:
            if row.stride > 1 and stages[-1]:
                self.feature_info.append(feature(in_chs, reduction, f"stages.{len(stages) - 1}"))
                stages.append([])
            reduction *= row.stride
            for i in range(row.repeats):
                stages[-1].append(InvertedResidual(
                    in_chs, row.out_chs, in_chs * row.exp_ratio, row.kernel_size, row.stride if i == 0 else 1,
                    act_layer="silu", se_layer=_se_layer, drop_path_rate=next(dprs), bn_eps=bn_eps))
                in_chs = row.out_chs
        self.feature_info.append(feature(in_chs, reduction, f"stages.{len(stages) - 1}"))
        self.stages = nn.Sequential(*[nn.Sequential(*s) for s in stages])
        self.neck = ConvNormAct(in_chs, cfg.head_chs, 1, act_layer="silu", bn_eps=bn_eps)
        self.num_features = cfg.head_chs
        self.head = ClassifierHead(cfg.head_chs, num_classes, drop_rate=drop_rate)
        init_weights(self, linear="uniform")


@dataclass(frozen=True, kw_only=True)
class ReleasedModel:
    """Paper Table 2 figures of one scaled model, the torchvision checkpoint's eval crop and BatchNorm eps."""

    figures: PaperFigures
    crop_pct: float
    bn_eps: float = 1e-5
    notes: str = ""


_ROUNDED = "the paper prints two significant digits ({} G); measured MACs are within {}"
RELEASED: dict[int, ReleasedModel] = {
    0: ReleasedModel(figures=PaperFigures(params_m=5.3, macs_g=0.39, top1=77.1), crop_pct=224 / 256),
    1: ReleasedModel(figures=PaperFigures(params_m=7.8, macs_g=0.70, top1=79.1), crop_pct=240 / 256),
    2: ReleasedModel(figures=PaperFigures(params_m=9.2, macs_g=1.0, top1=80.1), crop_pct=1.0),
    3: ReleasedModel(figures=PaperFigures(params_m=12.0, macs_g=1.8, top1=81.6), crop_pct=300 / 320),
    4: ReleasedModel(figures=PaperFigures(params_m=19.0, macs_g=4.2, top1=82.9, complexity_tol=0.05),
                     crop_pct=380 / 384, notes=_ROUNDED.format(4.2, "5%")),
    5: ReleasedModel(figures=PaperFigures(params_m=30.0, macs_g=9.9, top1=83.6, complexity_tol=0.05),
                     crop_pct=1.0, bn_eps=1e-3, notes=_ROUNDED.format(9.9, "5%")),
    6: ReleasedModel(figures=PaperFigures(params_m=43.0, macs_g=19.0, top1=84.0), crop_pct=1.0, bn_eps=1e-3),
    7: ReleasedModel(figures=PaperFigures(params_m=66.0, macs_g=37.0, top1=84.3), crop_pct=1.0, bn_eps=1e-3),
}

B0 = EfficientNetCfg()


def _variant(phi: int) -> Variant:
    scaling, released = RELEASED_SCALING[phi], RELEASED[phi]
    res = scaling.resolution
    return Variant(
        cfg=replace(scale_cfg(B0, scaling), bn_eps=released.bn_eps),
        figures=released.figures,
        reference=(f"torchvision:efficientnet_b{phi}", f"timm:efficientnet_b{phi}"),
        data_config=DataConfig(input_size=(3, res, res), crop_pct=released.crop_pct, interpolation="bicubic"),
        notes=" ".join(filter(None, (
            f"Computed from B0 by compound scaling with the released coefficients (w={scaling.width_mult}, "
            f"d={scaling.depth_mult}, r={res}); crop_pct as torchvision's checkpoint.", released.notes))),
        extra={"heavy": True} if released.figures.macs_g > 2.0 else {},
    )


VARIANTS: dict[str, Variant] = {f"efficientnet_b{phi}": _variant(phi) for phi in RELEASED_SCALING}

register_family(
    "efficientnet", EfficientNet, VARIANTS,
    paper=Paper(title="EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
                url="https://arxiv.org/abs/1905.11946", venue="ICML 2019"),
)
