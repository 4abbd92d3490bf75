"""MobileNetV1 (Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", arXiv 2017).

https://arxiv.org/abs/1704.04861 — seeds 001 and 003. A 3x3 stride-2 stem followed by 13 depthwise-separable
layers (paper Table 1), global average pooling and one fully connected layer. The width multiplier α scales
every layer's channels (rounded to multiples of 8, which leaves the paper's α ∈ {0.25, 0.5, 0.75, 1} exact);
the resolution multiplier ρ is simply the input size (the network is fully convolutional).

Adapted on purpose: the activation is ReLU6 (the authors' released TensorFlow code and timm) where the paper's
text says ReLU — ``act_layer="relu"`` gives the text's version. The paper's Table 1 lists the 13th depthwise
layer as stride 2 at 7x7 input; its output is 7x7, so it is stride 1 (as in every released implementation).
With these, timm ``mobilenetv1_100`` has the same tensors in the same order and its weights load directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from litevision.layers import ClassifierHead, ConvNormAct, DepthwiseSeparableConv, make_divisible
from litevision.layers.helpers import init_weights
from litevision.models._builder import Variant, register_family
from litevision.models._card import DataConfig, Paper, PaperFigures
from litevision.models._contract import LiteModel, feature


@dataclass(frozen=True)
class SeparableRow:
    """``repeats`` depthwise-separable layers (3x3 depthwise, then 1x1 to ``out_chs``); the first has ``stride``."""

    out_chs: int
    stride: int
    repeats: int = 1


PAPER_ROWS = (
    SeparableRow(64, 1),
    SeparableRow(128, 2),
    SeparableRow(128, 1),
    SeparableRow(256, 2),
    SeparableRow(256, 1),
    SeparableRow(512, 2),
    SeparableRow(512, 1, repeats=5),
    SeparableRow(1024, 2),
    SeparableRow(1024, 1),
)


@dataclass(frozen=True)
class MobileNetV1Cfg:
    width_mult: float = 1.0
    rows: tuple[SeparableRow, ...] = PAPER_ROWS
    stem_chs: int = 32


class MobileNetV1(LiteModel):
    """Stem conv, then one stage per output stride (2, 4, 8, 16, 32) of depthwise-separable layers."""

    def __init__(
        self,
        cfg: MobileNetV1Cfg,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        act_layer: str | Callable[..., nn.Module] = "relu6",
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        chs = lambda c: make_divisible(c * cfg.width_mult, 8)  # noqa: E731
        in_chs = chs(cfg.stem_chs)
        self.stem = ConvNormAct(in_chans, in_chs, 3, stride=2, act_layer=act_layer, bn_eps=bn_eps)
        # stochastic depth drops residual branches; MobileNetV1 has none, so ``drop_path_rate`` is accepted for
        # the common contract and must be 0.
        if drop_path_rate:
            raise ValueError("MobileNetV1 has no residual connections: drop_path_rate must be 0")
        stages: list[list[nn.Module]] = []
        self.feature_info, reduction = [], 2
        for row in cfg.rows:
            if row.stride > 1 or not stages:
                if stages:
                    self.feature_info.append(feature(in_chs, reduction, f"stages.{len(stages) - 1}"))
                stages.append([])
            reduction *= row.stride
            for i in range(row.repeats):
                stages[-1].append(DepthwiseSeparableConv(
                    in_chs, chs(row.out_chs), 3, row.stride if i == 0 else 1, act_layer=act_layer, pw_act=True,
                    skip=False, bn_eps=bn_eps))
                in_chs = chs(row.out_chs)
        self.feature_info.append(feature(in_chs, reduction, f"stages.{len(stages) - 1}"))
        self.stages = nn.Sequential(*[nn.Sequential(*s) for s in stages])
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, drop_rate=drop_rate)
        init_weights(self)


# paper Table 6 at 224x224
VARIANTS: dict[str, Variant] = {
    "mobilenetv1_025": Variant(
        cfg=MobileNetV1Cfg(width_mult=0.25),
        figures=PaperFigures(params_m=0.5, macs_g=0.041, top1=50.6, complexity_tol=0.07),
        notes="The paper rounds params to one decimal: 0.47M (exact) is printed as 0.5M."),
    "mobilenetv1_050": Variant(cfg=MobileNetV1Cfg(width_mult=0.50),
                               figures=PaperFigures(params_m=1.3, macs_g=0.149, top1=63.7)),
    "mobilenetv1_075": Variant(cfg=MobileNetV1Cfg(width_mult=0.75),
                               figures=PaperFigures(params_m=2.6, macs_g=0.325, top1=68.4)),
    "mobilenetv1_100": Variant(cfg=MobileNetV1Cfg(width_mult=1.0),
                               figures=PaperFigures(params_m=4.2, macs_g=0.569, top1=70.6),
                               reference=("timm:mobilenetv1_100",)),
}

register_family(
    "mobilenetv1", MobileNetV1, VARIANTS,
    paper=Paper(title="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
                url="https://arxiv.org/abs/1704.04861", venue="arXiv 2017"),
    data_config=DataConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic"),
    notes="ReLU6 as in the authors' released code (paper text: ReLU; act_layer='relu' gives it); the 13th "
          "depthwise layer is stride 1 (Table 1's 's2' at 7x7 input is a typo). Same tensors as timm "
          "mobilenetv1_100, whose weights load directly (mean/std 0.5 as timm's weights).",
)
