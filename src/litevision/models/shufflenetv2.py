"""ShuffleNetV2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
ECCV 2018).

https://arxiv.org/abs/1807.11164 — seed 001. Paper Table 5: a 3x3 stride-2 conv (24) and max pooling, three
stages of 4 / 8 / 4 units, a 1x1 conv to 1024 (2048 for 2.0x), global pooling and the classifier. A unit
(Fig. 3c) splits the channels in two halves: one is kept, the other goes through 1x1 conv -> 3x3 depthwise
conv -> 1x1 conv; the halves are concatenated and shuffled (:func:`litevision.ops.channel_shuffle`). The
stride-2 unit (Fig. 3d) feeds the whole input to both branches, the kept one becoming 3x3 depthwise stride 2
-> 1x1 conv, which doubles the channels. Weights of torchvision ``shufflenet_v2_x0_5`` ... ``x2_0`` load
directly (same tensors in the same order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from litevision.layers import ChannelShuffle, ClassifierHead, ConvNormAct, DropPath, drop_path_rates
from litevision.layers.helpers import init_weights
from litevision.models._builder import Variant, register_family
from litevision.models._card import Paper, PaperFigures
from litevision.models._contract import LiteModel, feature


class ShuffleUnitV2(nn.Module):
    """Paper Fig. 3 (c) for ``stride == 1`` (channel split) and (d) for ``stride == 2`` (no split)."""

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, act_layer: str = "relu", drop_path_rate: float = 0.0
    ) -> None:
        super().__init__()
        if stride == 1 and in_chs != out_chs:
            raise ValueError(f"a stride-1 ShuffleNetV2 unit keeps its width, got {in_chs} -> {out_chs}")
        self.stride = stride
        branch_chs = out_chs // 2
        if stride > 1:  # the "kept" branch of the stride-2 unit: depthwise downsampling then 1x1
            self.shortcut = nn.Sequential(
                ConvNormAct(in_chs, in_chs, 3, stride, groups=in_chs, act_layer=None),
                ConvNormAct(in_chs, branch_chs, 1, act_layer=act_layer),
            )
        else:
            self.shortcut = nn.Identity()
        main_in = in_chs if stride > 1 else branch_chs
        self.conv_pw = ConvNormAct(main_in, branch_chs, 1, act_layer=act_layer)
        self.conv_dw = ConvNormAct(branch_chs, branch_chs, 3, stride, groups=branch_chs, act_layer=None)
        self.conv_pwl = ConvNormAct(branch_chs, branch_chs, 1, act_layer=act_layer)
        # stochastic depth on the transformed half only when it is paired with an identity half
        self.drop_path = DropPath(drop_path_rate) if stride == 1 and drop_path_rate > 0 else nn.Identity()
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)
        else:
            kept = self.shortcut(x)
        out = self.drop_path(self.conv_pwl(self.conv_dw(self.conv_pw(x))))
        return self.shuffle(torch.cat((kept, out), dim=1))


@dataclass(frozen=True)
class ShuffleNetV2Cfg:
    """Paper Table 5: output channels and units of stages 2-4, stem and final 1x1 conv widths."""

    stage_out_chs: tuple[int, ...]
    head_chs: int = 1024
    stage_repeats: tuple[int, ...] = (4, 8, 4)
    stem_chs: int = 24


class ShuffleNetV2(LiteModel):
    def __init__(
        self,
        cfg: ShuffleNetV2Cfg,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        act_layer: str = "relu",
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        self.stem = nn.Sequential(
            ConvNormAct(in_chans, cfg.stem_chs, 3, stride=2, act_layer=act_layer),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        in_chs, stages, self.feature_info = cfg.stem_chs, [], []
        for i, (out_chs, repeats, dprs) in enumerate(
                zip(cfg.stage_out_chs, cfg.stage_repeats, drop_path_rates(drop_path_rate, cfg.stage_repeats))):
            stages.append(nn.Sequential(*[
                ShuffleUnitV2(in_chs if j == 0 else out_chs, out_chs, 2 if j == 0 else 1, act_layer, dprs[j])
                for j in range(repeats)]))
            in_chs = out_chs
            self.feature_info.append(feature(out_chs, 2 ** (i + 3), f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.neck = ConvNormAct(in_chs, cfg.head_chs, 1, act_layer=act_layer)
        self.num_features = cfg.head_chs
        self.head = ClassifierHead(cfg.head_chs, num_classes, drop_rate=drop_rate)
        init_weights(self)


# paper Tables 5 and 8 (ImageNet, 224x224)
VARIANTS: dict[str, Variant] = {
    "shufflenetv2_050": Variant(cfg=ShuffleNetV2Cfg(stage_out_chs=(48, 96, 192)),
                                figures=PaperFigures(params_m=1.4, macs_g=0.041, top1=60.3),
                                reference=("torchvision:shufflenet_v2_x0_5",)),
    "shufflenetv2_100": Variant(cfg=ShuffleNetV2Cfg(stage_out_chs=(116, 232, 464)),
                                figures=PaperFigures(params_m=2.3, macs_g=0.146, top1=69.4),
                                reference=("torchvision:shufflenet_v2_x1_0",)),
    "shufflenetv2_150": Variant(cfg=ShuffleNetV2Cfg(stage_out_chs=(176, 352, 704)),
                                figures=PaperFigures(params_m=3.5, macs_g=0.299, top1=72.6),
                                reference=("torchvision:shufflenet_v2_x1_5",)),
    "shufflenetv2_200": Variant(cfg=ShuffleNetV2Cfg(stage_out_chs=(244, 488, 976), head_chs=2048),
                                figures=PaperFigures(params_m=7.4, macs_g=0.591, top1=74.9),
                                reference=("torchvision:shufflenet_v2_x2_0",)),
}

register_family(
    "shufflenetv2", ShuffleNetV2, VARIANTS,
    paper=Paper(title="ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
                url="https://arxiv.org/abs/1807.11164", venue="ECCV 2018"),
    notes="same tensors in the same order as the torchvision model; its weights load directly",
)
