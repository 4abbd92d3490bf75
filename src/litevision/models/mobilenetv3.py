"""MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019).

https://arxiv.org/abs/1905.02244 — seeds 001 and 003. The searched Large and Small networks of paper Tables 1
and 2: inverted residual ("bneck") blocks with per-row kernel size, expansion width, squeeze-excitation and
activation (ReLU or hard-swish); SE reduces to ``make_divisible(exp/4, 8)`` channels with a hard-sigmoid gate.
The efficient last stage: 1x1 conv to 960 (Large) / 576 (Small) + hard-swish, global pooling, a 1x1 conv
(a fully connected layer, no BatchNorm) to 1280 / 1024 + hard-swish, dropout and the classifier.

The width multiplier scales every layer except the 1280 / 1024 head, as in the paper (its 0.75 rows: Large
4.0M / 155M, Small 2.0M / 44M) and timm. torchvision's ``width_mult`` also shrinks the head, giving a different
network (3.4M / 140M for Large 0.75). BatchNorm eps defaults to 1e-3 (the authors' TensorFlow code and
torchvision); pass ``bn_eps=1e-5`` for timm's weights. Weights of torchvision ``mobilenet_v3_large/small``
load by position; timm's ``mobilenetv3_*`` keep the 1280-wide layer as a 1x1 conv and are mapped by
:meth:`MobileNetV3.remap_state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial

from torch import Tensor, nn

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
from litevision.models._card import Paper, PaperFigures
from litevision.models._contract import LiteModel, feature
from litevision.models._weights import _by_position


@dataclass(frozen=True)
class BneckRow:
    """One row of the paper's Table 1 / 2: a single bneck block."""

    kernel_size: int
    exp_chs: int
    out_chs: int
    use_se: bool
    act: str
    stride: int


RE, HS = "relu", "hard_swish"

LARGE_ROWS = (
    BneckRow(kernel_size=3, exp_chs=16, out_chs=16, use_se=False, act=RE, stride=1),
    BneckRow(kernel_size=3, exp_chs=64, out_chs=24, use_se=False, act=RE, stride=2),
    BneckRow(kernel_size=3, exp_chs=72, out_chs=24, use_se=False, act=RE, stride=1),
    BneckRow(kernel_size=5, exp_chs=72, out_chs=40, use_se=True, act=RE, stride=2),
    BneckRow(kernel_size=5, exp_chs=120, out_chs=40, use_se=True, act=RE, stride=1),
    BneckRow(kernel_size=5, exp_chs=120, out_chs=40, use_se=True, act=RE, stride=1),
    BneckRow(kernel_size=3, exp_chs=240, out_chs=80, use_se=False, act=HS, stride=2),
    BneckRow(kernel_size=3, exp_chs=200, out_chs=80, use_se=False, act=HS, stride=1),
    BneckRow(kernel_size=3, exp_chs=184, out_chs=80, use_se=False, act=HS, stride=1),
    BneckRow(kernel_size=3, exp_chs=184, out_chs=80, use_se=False, act=HS, stride=1),
    BneckRow(kernel_size=3, exp_chs=480, out_chs=112, use_se=True, act=HS, stride=1),
    BneckRow(kernel_size=3, exp_chs=672, out_chs=112, use_se=True, act=HS, stride=1),
    BneckRow(kernel_size=5, exp_chs=672, out_chs=160, use_se=True, act=HS, stride=2),
    BneckRow(kernel_size=5, exp_chs=960, out_chs=160, use_se=True, act=HS, stride=1),
    BneckRow(kernel_size=5, exp_chs=960, out_chs=160, use_se=True, act=HS, stride=1),
)

SMALL_ROWS = (
    BneckRow(kernel_size=3, exp_chs=16, out_chs=16, use_se=True, act=RE, stride=2),
    BneckRow(kernel_size=3, exp_chs=72, out_chs=24, use_se=False, act=RE, stride=2),
    BneckRow(kernel_size=3, exp_chs=88, out_chs=24, use_se=False, act=RE, stride=1),
    BneckRow(kernel_size=5, exp_chs=96, out_chs=40, use_se=True, act=HS, stride=2),
    BneckRow(kernel_size=5, exp_chs=240, out_chs=40, use_se=True, act=HS, stride=1),
    BneckRow(kernel_size=5, exp_chs=240, out_chs=40, use_se=True, act=HS, stride=1),
    BneckRow(kernel_size=5, exp_chs=120, out_chs=48, use_se=True, act=HS, stride=1),
    BneckRow(kernel_size=5, exp_chs=144, out_chs=48, use_se=True, act=HS, stride=1),
    BneckRow(kernel_size=5, exp_chs=288, out_chs=96, use_se=True, act=HS, stride=2),
    BneckRow(kernel_size=5, exp_chs=576, out_chs=96, use_se=True, act=HS, stride=1),
    BneckRow(kernel_size=5, exp_chs=576, out_chs=96, use_se=True, act=HS, stride=1),
)


@dataclass(frozen=True)
class MobileNetV3Cfg:
    """``last_conv_chs``: the 1x1 conv before pooling (scaled by ``width_mult``); ``head_chs``: the
    pooled hidden layer (not scaled). ``reduced_tail``: the last stage, the last conv and the head at half
    width (the MobileNetV3 paper's detection backbone, sec. 6.3; torchvision's ``reduced_tail=True``)."""

    rows: tuple[BneckRow, ...]
    last_conv_chs: int
    head_chs: int
    width_mult: float = 1.0
    stem_chs: int = 16
    reduced_tail: bool = False

    def tail_reduced(self) -> MobileNetV3Cfg:
        """The config with the reduced tail applied: from the last stride-2 row on, outputs halved, and the
        expansions after that row's own; last conv and head halved."""
        if not self.reduced_tail:
            return self
        last = max(i for i, r in enumerate(self.rows) if r.stride > 1)
        rows = [*self.rows[:last], replace(self.rows[last], out_chs=self.rows[last].out_chs // 2)]
        rows += [replace(r, exp_chs=r.exp_chs // 2, out_chs=r.out_chs // 2) for r in self.rows[last + 1:]]
        return replace(self, rows=tuple(rows), last_conv_chs=self.last_conv_chs // 2, head_chs=self.head_chs // 2,
                       reduced_tail=False)


def _se_layer(block_chs: int, block_in_chs: int) -> nn.Module:
    return SqueezeExcite(block_chs, rd_channels=make_divisible(block_chs / 4, 8), act_layer="relu",
                         gate_layer="hard_sigmoid")


class MobileNetV3(LiteModel):
    """Stem conv, bneck blocks grouped into one stage per output stride, last 1x1 conv as the neck."""

    def __init__(
        self,
        cfg: MobileNetV3Cfg,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        cfg = cfg.tail_reduced()
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        chs = lambda c: make_divisible(c * cfg.width_mult, 8)  # noqa: E731
        in_chs = chs(cfg.stem_chs)
        self.stem = ConvNormAct(in_chans, in_chs, 3, stride=2, act_layer="hard_swish", bn_eps=bn_eps)
        dprs = iter(drop_path_rates(drop_path_rate, [len(cfg.rows)])[0])
        stages: list[list[nn.Module]] = [[]]
        self.feature_info, reduction = [], 2
        paper_in_chs = cfg.stem_chs
        for row in cfg.rows:
            if row.stride > 1 and stages[-1]:
                self.feature_info.append(feature(in_chs, reduction, f"stages.{len(stages) - 1}"))
                stages.append([])
            reduction *= row.stride
            # the authors' code defines the expansion as a factor of the block's input, so a width multiplier
            # reaches it through the rounded input width (Large 0.75: 16 -> 64, not 48)
            exp_chs = make_divisible(in_chs * row.exp_chs / paper_in_chs, 8)
            stages[-1].append(InvertedResidual(
                in_chs, chs(row.out_chs), exp_chs, row.kernel_size, row.stride, act_layer=row.act,
                se_layer=_se_layer if row.use_se else None, drop_path_rate=next(dprs), bn_eps=bn_eps))
            in_chs, paper_in_chs = chs(row.out_chs), row.out_chs
        self.feature_info.append(feature(in_chs, reduction, f"stages.{len(stages) - 1}"))
        self.stages = nn.Sequential(*[nn.Sequential(*s) for s in stages])
        last_chs = chs(cfg.last_conv_chs)
        self.neck = ConvNormAct(in_chs, last_chs, 1, act_layer="hard_swish", bn_eps=bn_eps)
        self.head = ClassifierHead(last_chs, num_classes, hidden_features=cfg.head_chs, act_layer="hard_swish",
                                   drop_rate=drop_rate)
        self.num_features = cfg.head_chs
        init_weights(self)

    def remap_state_dict(self, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor] | None:
        """timm layout: same tensors in the same order, except the 1280/1024 layer is a 1x1 conv."""
        if "conv_head.weight" not in state_dict or state_dict["conv_head.weight"].ndim != 4:
            return None
        sd = dict(state_dict)
        sd["conv_head.weight"] = sd["conv_head.weight"].flatten(1)
        return _by_position(self.state_dict(), sd)


_LARGE = partial(MobileNetV3Cfg, LARGE_ROWS, last_conv_chs=960, head_chs=1280)
_SMALL = partial(MobileNetV3Cfg, SMALL_ROWS, last_conv_chs=576, head_chs=1024)

# paper Table 3 (ImageNet, 224x224)
VARIANTS: dict[str, Variant] = {
    "mobilenetv3_large_075": Variant(cfg=_LARGE(width_mult=0.75),
                                     figures=PaperFigures(params_m=4.0, macs_g=0.155, top1=73.3),
                                     reference=("timm:mobilenetv3_large_075",)),
    "mobilenetv3_large_100": Variant(cfg=_LARGE(), figures=PaperFigures(params_m=5.4, macs_g=0.219, top1=75.2),
                                     reference=("torchvision:mobilenet_v3_large", "timm:mobilenetv3_large_100")),
    "mobilenetv3_small_075": Variant(cfg=_SMALL(width_mult=0.75),
                                     figures=PaperFigures(params_m=2.0, macs_g=0.044, top1=65.4),
                                     reference=("timm:mobilenetv3_small_075",)),
    "mobilenetv3_small_100": Variant(cfg=_SMALL(), figures=PaperFigures(params_m=2.5, macs_g=0.056, top1=67.4),
                                     reference=("torchvision:mobilenet_v3_small", "timm:mobilenetv3_small_100")),
}

register_family(
    "mobilenetv3", MobileNetV3, VARIANTS,
    paper=Paper(title="Searching for MobileNetV3", url="https://arxiv.org/abs/1905.02244", venue="ICCV 2019"),
    notes="BatchNorm eps 1e-3 (TensorFlow/torchvision); timm weights need bn_eps=1e-5. The 1280/1024 head is not "
          "width-scaled (paper, timm); torchvision's width_mult would scale it.",
)
