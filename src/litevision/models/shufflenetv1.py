"""ShuffleNetV1 (Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
Devices", CVPR 2018).

https://arxiv.org/abs/1707.01083 — seed 001. No maintained reference implementation exists, so this follows
the paper. Table 1: a 3x3 stride-2 conv (24) and 3x3 max pooling, stages 2-4 of 4 / 8 / 4 ShuffleNet units
with per-group-count output widths, global pooling and the classifier. A unit (Fig. 2):
1x1 group conv to a bottleneck of 1/4 of the unit's output -> BN ReLU -> channel shuffle -> 3x3 depthwise conv
(BN, no ReLU) -> 1x1 group conv (BN) -> residual add -> ReLU. The stride-2 unit uses a 3x3 average pooling
shortcut and *concatenates* it with the branch (so the branch produces ``out - in`` channels). The first 1x1
conv of stage 2 is not grouped (its input has only 24 channels), and no shuffle follows it (it would only
permute the channels of a dense conv).

"ShuffleNet s×" multiplies every width, the stem included, by s (paper Sec. 4.1). Widths that s makes
incompatible with the groups are rounded to the nearest multiple of 4·g (stages: the bottleneck must split
into g groups) and of g (stem: the first unit's branch width ``out - stem`` must too); s = 1 is unchanged.
The paper's "FLOPs" are multiply-adds (MACs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from litevision.layers import (
    ChannelShuffle,
    ClassifierHead,
    ConvNormAct,
    DropPath,
    create_act,
    drop_path_rates,
    make_divisible,
)
from litevision.layers.helpers import init_weights
from litevision.models._builder import Variant, register_family
from litevision.models._card import Paper, PaperFigures
from litevision.models._contract import LiteModel, feature


class ShuffleUnitV1(nn.Module):
    """Paper Fig. 2 (b) for ``stride == 1`` (add) and (c) for ``stride == 2`` (avg-pool shortcut, concat)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        groups: int,
        stride: int = 1,
        group_first_conv: bool = True,
        bottleneck_ratio: float = 0.25,
        act_layer: str = "relu",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.stride = stride
        if stride == 1 and in_chs != out_chs:
            raise ValueError(f"a stride-1 ShuffleNet unit keeps its width, got {in_chs} -> {out_chs}")
        mid_chs = int(out_chs * bottleneck_ratio)
        branch_chs = out_chs - in_chs if stride > 1 else out_chs
        first_groups = groups if group_first_conv else 1
        widths = {"bottleneck": mid_chs, "branch output": branch_chs}
        if first_groups > 1:
            widths["input"] = in_chs
        for what, chs in widths.items():
            if chs % groups:
                raise ValueError(f"ShuffleNet unit {in_chs}->{out_chs}: {what} width {chs} is not divisible "
                                 f"by {groups} groups")
        self.conv_pw = ConvNormAct(in_chs, mid_chs, 1, groups=first_groups, act_layer=act_layer)
        self.shuffle = ChannelShuffle(groups) if first_groups > 1 else nn.Identity()
        self.conv_dw = ConvNormAct(mid_chs, mid_chs, 3, stride, groups=mid_chs, act_layer=None)
        self.conv_pwl = ConvNormAct(mid_chs, branch_chs, 1, groups=groups, act_layer=None)
        self.shortcut = nn.AvgPool2d(3, stride, padding=1) if stride > 1 else nn.Identity()
        self.drop_path = DropPath(drop_path_rate) if stride == 1 and drop_path_rate > 0 else nn.Identity()
        self.act = create_act(act_layer)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_pwl(self.conv_dw(self.shuffle(self.conv_pw(x))))
        if self.stride > 1:
            out = torch.cat((self.shortcut(x), out), dim=1)
        else:
            out = x + self.drop_path(out)
        return self.act(out)


@dataclass(frozen=True)
class ShuffleNetV1Cfg:
    """Paper Table 1 for one group count ``groups`` (widths at 1x); ``width_mult`` is the paper's s."""

    groups: int
    stage_out_chs: tuple[int, ...]
    width_mult: float = 1.0
    stage_repeats: tuple[int, ...] = (4, 8, 4)
    stem_chs: int = 24
    bottleneck_ratio: float = 0.25

    def scaled_stage_chs(self) -> tuple[int, ...]:
        return tuple(make_divisible(c * self.width_mult, 4 * self.groups) for c in self.stage_out_chs)

    def scaled_stem_chs(self) -> int:
        return make_divisible(self.stem_chs * self.width_mult, self.groups)


# paper Table 1: output channels of stages 2, 3, 4 for g = 1, 2, 3, 4, 8 (ShuffleNet 1x)
TABLE1_STAGE_CHS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}


class ShuffleNetV1(LiteModel):
    def __init__(
        self,
        cfg: ShuffleNetV1Cfg,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        act_layer: str = "relu",
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        in_chs = cfg.scaled_stem_chs()
        self.stem = nn.Sequential(
            ConvNormAct(in_chans, in_chs, 3, stride=2, act_layer=act_layer),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        stages, self.feature_info = [], []
        for i, (out_chs, repeats, dprs) in enumerate(zip(
                cfg.scaled_stage_chs(), cfg.stage_repeats, drop_path_rates(drop_path_rate, cfg.stage_repeats))):
            units = []
            for j in range(repeats):
                units.append(ShuffleUnitV1(
                    in_chs, out_chs, cfg.groups, stride=2 if j == 0 else 1, group_first_conv=(i, j) != (0, 0),
                    bottleneck_ratio=cfg.bottleneck_ratio, act_layer=act_layer, drop_path_rate=dprs[j]))
                in_chs = out_chs
            stages.append(nn.Sequential(*units))
            self.feature_info.append(feature(out_chs, 2 ** (i + 3), f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, drop_rate=drop_rate)
        init_weights(self)


_NO_FIGURES = PaperFigures(complexity_tol=None)
_ROW_038 = "Paper Table 2 gives one complexity for the whole 0.5x row (38 MFLOPs), not one per group count."
_G8_050 = (_ROW_038 + " With g = 8 the 0.5x widths (stem 16, stages 192/384/768) cost 40.5M MACs, as the "
           "authors' released g = 8 0.5x model (40M): within 7%.")

# (width multiplier s, groups g) -> paper figures: Table 1 (1x complexity per g), Table 2 (top-1 = 100 - error
# for 1x and 0.5x), Table 5 (1.5x and 2x with g = 3). The paper's "MFLOPs" are MACs; it gives no params.
PAPER: dict[tuple[float, int], PaperFigures] = {
    (1.0, 1): PaperFigures(macs_g=0.143, top1=66.4),
    (1.0, 2): PaperFigures(macs_g=0.140, top1=67.3),
    (1.0, 3): PaperFigures(macs_g=0.137, top1=67.4),
    (1.0, 4): PaperFigures(macs_g=0.133, top1=67.2),
    (1.0, 8): PaperFigures(macs_g=0.137, top1=67.6),
    (0.5, 1): PaperFigures(macs_g=0.038, top1=54.9),
    (0.5, 2): PaperFigures(macs_g=0.038, top1=55.6),
    (0.5, 3): PaperFigures(macs_g=0.038, top1=56.8),
    (0.5, 4): PaperFigures(macs_g=0.038, top1=58.4),
    (0.5, 8): PaperFigures(macs_g=0.038, top1=57.7, complexity_tol=0.07),
    (1.5, 3): PaperFigures(macs_g=0.292, top1=71.5),
    (2.0, 3): PaperFigures(macs_g=0.524, top1=73.7),
}
SCALES = {"050": 0.5, "100": 1.0, "150": 1.5, "200": 2.0}


def _notes(scale: float, groups: int) -> str:
    if (scale, groups) not in PAPER:
        return "The paper reports no complexity for this scale and group count."
    if scale == 0.5:
        return _G8_050 if groups == 8 else _ROW_038
    return ""


VARIANTS: dict[str, Variant] = {
    f"shufflenetv1_g{groups}_{suffix}": Variant(
        cfg=ShuffleNetV1Cfg(groups=groups, stage_out_chs=stage_chs, width_mult=scale),
        figures=PAPER.get((scale, groups), _NO_FIGURES), notes=_notes(scale, groups))
    for groups, stage_chs in TABLE1_STAGE_CHS.items() for suffix, scale in SCALES.items()
}

register_family(
    "shufflenetv1", ShuffleNetV1, VARIANTS,
    paper=Paper(title="ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
                url="https://arxiv.org/abs/1707.01083", venue="CVPR 2018"),
    notes="No reference implementation: built from the paper (Table 1, Fig. 2); the paper gives no parameter counts.",
)
