"""ResNet-18/50 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) with optional attention:
SE-ResNet (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018) and CBAM-ResNet (Woo et al., "CBAM:
Convolutional Block Attention Module", ECCV 2018). https://arxiv.org/abs/1512.03385 — seeds 001, 004.

Attention is any registered plug-in module (``create_model("resnet50", attn="eca")``), built by
``litevision.modules.create_module(attn, channels)`` and placed where both the SE and the CBAM papers put
it: on the residual branch after its last BatchNorm, before the addition with the shortcut (SE paper
Fig. 3, CBAM paper Fig. 3; timm's ``seresnet*`` and ``attn_layer='cbam'`` do the same).

Layout and key names are torchvision's (``conv1 bn1 layer1..4 fc``; blocks ``conv1 bn1 conv2 bn2 [conv3
bn3] downsample``), with the attention module as ``attn`` between the last BatchNorm and ``downsample``.
Bottlenecks stride in the 3x3 convolution ("ResNet v1.5", torchvision and timm), which is why our MACs are
~6% above the SE/CBAM papers' ResNet-50 figures: those count the original Caffe model that strides in the
first 1x1 convolution (3.86 G). torchvision ``resnet18/50`` state dicts load by key; timm ``seresnet50``
and ``resnet50`` with ``attn_layer='cbam'`` load by position (same tensors in the same order).
timm's SE rounds the reduced width up to a multiple of 8 (64 / 16 = 4 becomes 8 in ResNet-18's first
stage); the paper's r = 16 is our default, and ``attn_rd_divisor=8`` builds timm's ``seresnet18``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor, nn

from litevision.layers import DropPath, drop_path_rates, fuse_conv_bn, make_divisible
from litevision.layers.helpers import init_weights
from litevision.models._builder import Variant, register_family
from litevision.models._card import Paper, PaperFigures
from litevision.models._contract import LiteModel, feature
from litevision.modules import create_module

AttnFactory = Any  # callable(channels) -> nn.Module, or None


class ResidualBlock(nn.Module):
    """Shared forward/fuse of both block types: ``relu(attn(branch(x)) + shortcut(x))``."""

    convs: tuple[str, ...]

    def _init_tail(self, in_chs: int, out_chs: int, stride: int, attn: AttnFactory, drop_path_rate: float) -> None:
        self.attn = attn(out_chs) if attn is not None else nn.Identity()
        self.downsample = None
        if stride != 1 or in_chs != out_chs:
            self.downsample = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def branch(self, x: Tensor) -> Tensor:
        last = len(self.convs) - 1
        for i, name in enumerate(self.convs):
            x = getattr(self, f"bn{i + 1}")(getattr(self, name)(x))
            if i < last:
                x = self.act(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(self.drop_path(self.attn(self.branch(x))) + shortcut)

    def fuse(self) -> nn.Module:
        """Fold every BatchNorm of the branch and the shortcut into its convolution."""
        for i, name in enumerate(self.convs):
            bn = getattr(self, f"bn{i + 1}")
            if isinstance(bn, nn.BatchNorm2d):
                setattr(self, name, fuse_conv_bn(getattr(self, name), bn))
                setattr(self, f"bn{i + 1}", nn.Identity())
        if self.downsample is not None and isinstance(self.downsample[1], nn.BatchNorm2d):
            self.downsample = nn.Sequential(fuse_conv_bn(self.downsample[0], self.downsample[1]), nn.Identity())
        return self


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34)."""

    expansion = 1
    convs = ("conv1", "conv2")

    def __init__(self, in_chs: int, planes: int, stride: int, attn: AttnFactory, drop_path_rate: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self._init_tail(in_chs, planes, stride, attn, drop_path_rate)


class Bottleneck(ResidualBlock):
    """1x1 reduce -> 3x3 (strided, v1.5) -> 1x1 expand by 4 (ResNet-50 and deeper)."""

    expansion = 4
    convs = ("conv1", "conv2", "conv3")

    def __init__(self, in_chs: int, planes: int, stride: int, attn: AttnFactory, drop_path_rate: float) -> None:
        super().__init__()
        out_chs = planes * self.expansion
        self.conv1 = nn.Conv2d(in_chs, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self._init_tail(in_chs, out_chs, stride, attn, drop_path_rate)


BLOCKS: dict[str, type[ResidualBlock]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


@dataclass(frozen=True)
class ResNetCfg:
    """``block`` type, blocks per stage, first-stage width (doubled per stage) and default attention."""

    block: str
    depths: tuple[int, int, int, int]
    base_width: int = 64
    attn: str | None = None


class ResNet(LiteModel):
    """ResNet with torchvision's key names; ``attn`` is a registered plug-in module name (or None)."""

    def __init__(
        self,
        cfg: ResNetCfg,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        attn: str | None = None,
        attn_kwargs: dict[str, Any] | None = None,
        attn_rd_divisor: int = 1,
    ) -> None:
        """``attn`` overrides the variant's attention (``"none"`` removes it); ``attn_kwargs`` go to every
        attention module; ``attn_rd_divisor`` > 1 rounds the reduced width (channels * rd_ratio) up to a
        multiple of it, as timm's SE does with 8 (for modules taking ``rd_channels``)."""
        super().__init__()
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        attn_name = cfg.attn if attn is None else (None if attn == "none" else attn)
        self.attn_name = attn_name
        factory = _attn_factory(attn_name, dict(attn_kwargs or {}), attn_rd_divisor)
        block = BLOCKS[cfg.block]
        self.conv1 = nn.Conv2d(in_chans, cfg.base_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.base_width)
        self.act = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        dprs = drop_path_rates(drop_path_rate, list(cfg.depths))
        in_chs, self.feature_info = cfg.base_width, []
        for i, depth in enumerate(cfg.depths):
            planes, stride = cfg.base_width * 2 ** i, 1 if i == 0 else 2
            blocks = []
            for j in range(depth):
                blocks.append(block(in_chs, planes, stride if j == 0 else 1, factory, dprs[i][j]))
                in_chs = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append(feature(in_chs, 4 * 2 ** i, f"layer{i + 1}"))
        self.num_features = in_chs
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_chs, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self, linear=None)

    def stage_list(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.act(self.bn1(self.conv1(x))))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.drop(x.mean((2, 3)))
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        device = self.conv1.weight.device
        self.fc = nn.Linear(self.num_features, num_classes, device=device) if num_classes > 0 else nn.Identity()

    def fuse(self) -> nn.Module:
        """Fold the stem BatchNorm; ``fuse_model`` then folds each block through ``ResidualBlock.fuse``."""
        if isinstance(self.bn1, nn.BatchNorm2d):
            self.conv1 = fuse_conv_bn(self.conv1, self.bn1)
            self.bn1 = nn.Identity()
        return self

    def checkpoint_hint(self, state_dict: dict[str, Tensor]) -> str | None:
        """Name timm's SE variant (reduced widths rounded up to a multiple of 8) instead of listing keys."""
        ours, theirs = _se_widths(self.state_dict()), _se_widths(state_dict)
        rounded = [make_divisible(w, 8, round_limit=0.0) for w in ours]
        if ours and len(ours) == len(theirs) and ours != theirs and theirs == rounded:
            name = getattr(self, "model_name", "the model")
            return (f"this is timm's SE variant, whose squeeze widths are rounded up to a multiple of 8 "
                    f"({theirs[0]} where the paper's r = 16 gives {ours[0]}): build it with "
                    f"create_model({name!r}, attn_rd_divisor=8) (or --set model.kwargs.attn_rd_divisor=8)")
        return None

    def remap_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor] | None:
        """timm names the attention ``se`` whatever it is, and nests CBAM's spatial conv+BN one level
        deeper; rename those keys (positional matching would also work, this keeps errors readable)."""
        out = {}
        for k, v in state_dict.items():
            k = k.replace(".se.", ".attn.").replace(".spatial.conv.conv.", ".spatial.conv.")
            k = k.replace(".spatial.conv.bn.", ".spatial.bn.")
            out[k] = v
        return out


def _se_widths(state_dict: dict[str, Tensor]) -> list[int]:
    return [int(v.shape[0]) for k, v in state_dict.items() if k.endswith((".se.fc1.weight", ".attn.fc1.weight"))]


def _attn_factory(name: str | None, kwargs: dict[str, Any], rd_divisor: int) -> AttnFactory:
    if name is None:
        if kwargs or rd_divisor != 1:
            raise ValueError("attn_kwargs / attn_rd_divisor need an attention module (attn=...)")
        return None
    create_module(name, 64, **kwargs)  # fail now, with the module's own message, on bad names or kwargs

    def build(channels: int) -> nn.Module:
        kw = dict(kwargs)
        if rd_divisor > 1:
            ratio = kw.pop("rd_ratio", 1 / 16)
            kw["rd_channels"] = make_divisible(channels * ratio, rd_divisor, round_limit=0.0)
        return create_module(name, channels, **kw)

    return build


RESNET = Paper(title="Deep Residual Learning for Image Recognition", url="https://arxiv.org/abs/1512.03385",
               venue="CVPR 2016")
SE = Paper(title="Squeeze-and-Excitation Networks", url="https://arxiv.org/abs/1709.01507", venue="CVPR 2018")
CBAM = Paper(title="CBAM: Convolutional Block Attention Module", url="https://arxiv.org/abs/1807.06521",
             venue="ECCV 2018")
_V15 = ("MACs: the paper counts the original ResNet-50 that strides in the bottleneck's first 1x1 conv; "
        "with the strides moved there our count is 3.858 / 3.860 / 3.864 G (plain / SE / CBAM), the CBAM "
        "paper's figures exactly. We stride in the 3x3 conv like torchvision and timm (whose weights load): "
        "4.09 G, +6%.")
R18 = ResNetCfg(block="basic", depths=(2, 2, 2, 2))
R50 = ResNetCfg(block="bottleneck", depths=(3, 4, 6, 3))

VARIANTS: dict[str, Variant] = {
    "resnet18": Variant(
        cfg=R18, paper=RESNET, figures=PaperFigures(params_m=11.69, macs_g=1.82, top1=69.76),
        reference=("torchvision:resnet18", "timm:resnet18"),
        notes="top-1 of torchvision's reference weights (the paper reports 10-crop results)"),
    "resnet50": Variant(
        cfg=R50, paper=RESNET, figures=PaperFigures(params_m=25.56, macs_g=4.1, top1=76.13),
        reference=("torchvision:resnet50", "timm:resnet50"),
        notes="ResNet v1.5 (stride in the 3x3 conv, torchvision's 4.09 G); the paper's v1 has 3.8 G. "
              "top-1 of torchvision's reference weights"),
    "seresnet18": Variant(
        cfg=replace(R18, attn="se"), paper=SE, figures=PaperFigures(params_m=11.78, macs_g=1.814, top1=70.59),
        reference=("timm:seresnet18 (attn_rd_divisor=8)",),
        notes="r = 16 everywhere (64 channels -> 4); timm rounds to 8: build with attn_rd_divisor=8 to load timm "
              "weights. Figures and top-1 from the CBAM paper's ImageNet table (the SE paper has no ResNet-18)"),
    "seresnet50": Variant(
        cfg=replace(R50, attn="se"), paper=SE,
        figures=PaperFigures(params_m=28.09, macs_g=3.87, top1=76.71, complexity_tol=0.07),
        reference=("timm:seresnet50",), notes="SE paper Table 2 (3.87 GFLOPs there are MACs). " + _V15),
    "cbam_resnet18": Variant(
        cfg=replace(R18, attn="cbam"), paper=CBAM, figures=PaperFigures(params_m=11.78, macs_g=1.815, top1=70.73),
        reference=("timm:resnet18 attn_layer=cbam",), notes="CBAM paper's ImageNet table"),
    "cbam_resnet50": Variant(
        cfg=replace(R50, attn="cbam"), paper=CBAM,
        figures=PaperFigures(params_m=28.09, macs_g=3.864, top1=77.34, complexity_tol=0.07),
        reference=("timm:resnet50 attn_layer=cbam",), notes="CBAM paper's ImageNet table. " + _V15),
}

register_family("resnet", ResNet, VARIANTS, paper=RESNET)
