"""SSD and SSDLite detectors on any registered backbone — seed 003 ("SSD-MobileNet").

SSD (Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, https://arxiv.org/abs/1512.02325): default
boxes of several scales and aspect ratios on feature maps of decreasing resolution, each map with its own
class and box-offset predictors; training matches default boxes to ground truth at IoU >= 0.5 (plus each
object's best box), smooth-L1 on the offsets and cross-entropy with 3:1 hard-negative mining.
SSDLite (Sandler et al., MobileNetV2, sec. 6.2; Howard et al., MobileNetV3, sec. 6.3) replaces every 3x3
convolution of the extra layers and the predictors by depthwise-separable ones, and on MobileNetV3 taps the
expansion layer of the first stride-32 block (C4) and the last 1x1 convolution (C5).

``ssdlite320_mobilenetv3_large`` is torchvision's ``ssdlite320_mobilenet_v3_large`` layer for layer
(reduced tail: the last stage at half width, as torchvision builds it; BatchNorm eps 1e-3; six maps at 320 px;
``DefaultBoxGenerator([[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95)``; box coder weights (10, 10, 5, 5);
post-processing at score 0.001, NMS 0.55, 300 candidates and 300 detections), so its state dict loads
(positionally, auto-detected) and gives the same detections. Any other backbone (``backbone="lsnet_t"``) is
tapped at its stride-16 and stride-32 stages, then four extra blocks add the 5x5 ... 1x1 maps.

Differences from torchvision: the input is one batched, already normalized tensor (the data pipeline resizes
and normalizes), class labels are ``0 .. num_classes - 1`` (the background is the head's extra class 0), and
the default boxes come from each call's feature-map sizes (cached), so any input size works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection._utils import BoxCoder, SSDMatcher
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from litevision.layers import ConvNormAct
from litevision.models._builder import Variant, create_model, get_model_card, register_family
from litevision.models._card import DataConfig, Paper, PaperFigures
from litevision.models._detection import BackboneTaps, Detector, PostprocessCfg, Targets, check_targets

TORCHVISION_TAP = "mobilenetv3_c4"  # MobileNetV3's C4 expansion layer + last conv (torchvision's SSDLite)


@dataclass(frozen=True)
class SSDCfg:
    """One SSD variant: the backbone, how it is tapped, the extra layers, the default boxes, the heads."""

    backbone: str = "mobilenetv3_large_100"  # any registered classification model
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    tap: str = "stages"  # "stages": the stride-16 and stride-32 stages; TORCHVISION_TAP on a MobileNetV3
    # (with its reduced tail); any other backbone is tapped at its stages
    extra_chs: tuple[int, ...] = (512, 256, 256, 128)  # four extra maps (stride 64 ... 512)
    lite: bool = True  # depthwise-separable extras and predictors (SSDLite) instead of 3x3 convolutions
    aspect_ratios: tuple[tuple[int, ...], ...] = ((2, 3),) * 6
    min_ratio: float = 0.2
    max_ratio: float = 0.95
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    iou_threshold: float = 0.5  # default box <-> object matching
    neg_to_pos_ratio: int = 3  # hard-negative mining
    bn_eps: float = 1e-3
    bn_momentum: float = 0.03
    post: PostprocessCfg = PostprocessCfg(score_thresh=0.001, nms_thresh=0.55, topk_candidates=300,
                                          detections_per_img=300)


def _normal_init(module: nn.Module) -> None:
    """torchvision's SSDLite initialisation of the extra layers and predictors: N(0, 0.03), zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, mean=0.0, std=0.03)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class MobileNetV3C4Taps(nn.Module):
    """MobileNetV3's SSDLite feature maps (MobileNetV3 paper sec. 6.3): the expansion output of the first
    stride-32 block (C4) and the output of the last 1x1 convolution (C5). Shares the classifier's modules
    (``stem``, ``stages``, ``neck``), so the state dict is the classifier's minus its head."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.stem, self.stages, self.neck = body.stem, body.stages, body.neck
        c4_block = self.stages[-1][0]
        self.out_channels = [c4_block.conv_pw.out_channels, self.neck.out_channels]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        for stage in self.stages[:-1]:
            x = stage(x)
        first, rest = self.stages[-1][0], self.stages[-1][1:]
        c4 = first.conv_pw(x)  # (B, expansion, H/16, W/16)
        x = first.conv_pwl(first.se(first.conv_dw(c4)))  # the block's stride-2 rest (no residual at stride 2)
        for block in rest:
            x = block(x)
        return [c4, self.neck(x)]


def _extra_block(in_chs: int, out_chs: int, lite: bool, bn_eps: float, bn_momentum: float) -> nn.Sequential:
    mid = out_chs // 2
    kw = {"act_layer": "relu6", "bn_eps": bn_eps, "bn_momentum": bn_momentum}
    if lite:  # 1x1 -> depthwise 3x3 stride 2 -> 1x1, each with BN and ReLU6
        return nn.Sequential(ConvNormAct(in_chs, mid, 1, **kw), ConvNormAct(mid, mid, 3, stride=2, groups=mid, **kw),
                             ConvNormAct(mid, out_chs, 1, **kw))
    return nn.Sequential(ConvNormAct(in_chs, mid, 1, **kw), ConvNormAct(mid, out_chs, 3, stride=2, **kw))


class PredictionHead(nn.Module):
    """One predictor per map, outputs concatenated as (B, sum(H*W*anchors), columns) in torchvision's order."""

    def __init__(self, in_channels: list[int], num_anchors: list[int], columns: int, lite: bool, bn_eps: float,
                 bn_momentum: float) -> None:
        super().__init__()
        self.columns = columns
        blocks = []
        for chs, anchors in zip(in_channels, num_anchors):
            if lite:  # depthwise 3x3 (BN, ReLU6) -> 1x1
                blocks.append(nn.Sequential(
                    ConvNormAct(chs, chs, 3, groups=chs, act_layer="relu6", bn_eps=bn_eps, bn_momentum=bn_momentum),
                    nn.Conv2d(chs, columns * anchors, 1)))
            else:
                blocks.append(nn.Conv2d(chs, columns * anchors, 3, padding=1))
        self.module_list = nn.ModuleList(blocks)

    def forward(self, features: list[Tensor]) -> Tensor:
        outs = []
        for block, x in zip(self.module_list, features):
            y = block(x)
            n, _, h, w = y.shape
            # (N, A*K, H, W) -> (N, H*W*A, K)
            outs.append(y.view(n, -1, self.columns, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, self.columns))
        return torch.cat(outs, 1)


class SSD(Detector):
    """SSD / SSDLite: backbone taps + extra maps, a classification and a box-offset head over default boxes."""

    def __init__(self, cfg: SSDCfg, num_classes: int = 80, in_chans: int = 3, drop_path_rate: float = 0.0) -> None:
        super().__init__(cfg.post)
        self.cfg, self.num_classes, self.in_chans = cfg, num_classes, in_chans
        torchvision_tap = cfg.tap == TORCHVISION_TAP and get_model_card(cfg.backbone).family == "mobilenetv3"
        self.backbone_kwargs = {**({"reduced_tail": True} if torchvision_tap else {}), **cfg.backbone_kwargs}
        body = create_model(cfg.backbone, num_classes=0, in_chans=in_chans, drop_path_rate=drop_path_rate or None,
                            **self.backbone_kwargs)
        if torchvision_tap:
            self.backbone: nn.Module = MobileNetV3C4Taps(body)
        else:
            self.backbone = BackboneTaps(body, (16, 32))
        chs = list(self.backbone.out_channels)
        extras = []
        for out_chs in cfg.extra_chs:
            extras.append(_extra_block(chs[-1], out_chs, cfg.lite, cfg.bn_eps, cfg.bn_momentum))
            chs.append(out_chs)
        self.extra = nn.ModuleList(extras)
        if len(chs) != len(cfg.aspect_ratios):
            raise ValueError(f"{len(chs)} feature maps but {len(cfg.aspect_ratios)} aspect-ratio sets")
        self.anchor_generator = DefaultBoxGenerator([list(r) for r in cfg.aspect_ratios], cfg.min_ratio,
                                                    cfg.max_ratio)
        anchors = self.anchor_generator.num_anchors_per_location()
        # classification before regression: torchvision's SSDLiteHead order (its weights load by position)
        self.cls_head = PredictionHead(chs, anchors, num_classes + 1, cfg.lite, cfg.bn_eps, cfg.bn_momentum)
        self.reg_head = PredictionHead(chs, anchors, 4, cfg.lite, cfg.bn_eps, cfg.bn_momentum)
        for part in (self.extra, self.cls_head, self.reg_head):
            _normal_init(part)
        for m in self.modules():  # torchvision builds every BatchNorm of SSDLite with momentum 0.03
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = cfg.bn_momentum
        self.box_coder = BoxCoder(weights=cfg.box_weights)
        self.matcher = SSDMatcher(cfg.iou_threshold)
        self.feature_info = [{"num_chs": c, "reduction": 16 * 2 ** i, "module": f"map{i}"} for i, c in enumerate(chs)]
        self._priors: dict[tuple, Tensor] = {}
        self._export_priors: Tensor | None = None

    # --- network -----------------------------------------------------------------------------------------

    def features(self, images: Tensor) -> list[Tensor]:
        maps = self.backbone(images)
        x = maps[-1]
        for block in self.extra:
            x = block(x)
            maps.append(x)
        return maps

    def forward_raw(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(cls_logits (B, A, K + 1), box_regression (B, A, 4), priors (A, 4))`` — the default boxes ``xyxy``
        in pixels for this input size (a constant of an exported graph)."""
        maps = self.features(images)
        priors = self.priors(maps, (int(images.shape[-2]), int(images.shape[-1])))
        return self.cls_head(maps), self.reg_head(maps), priors

    def priors(self, maps: list[Tensor], image_size: tuple[int, int]) -> Tensor:
        if self._export_priors is not None:
            return self._export_priors
        key = (image_size, *(tuple(m.shape[-2:]) for m in maps), maps[0].dtype, maps[0].device)
        if key not in self._priors:
            images = ImageList(maps[0].new_zeros(1, 1, *image_size), [image_size])
            self._priors[key] = self.anchor_generator(images, maps)[0]
        return self._priors[key]

    def prepare_export(self, image_size: tuple[int, int]) -> None:
        """Fix the default boxes of ``image_size`` so the exported graph holds them as a constant."""
        with torch.no_grad():
            maps = self.features(torch.zeros(1, self.in_chans, *image_size))
        self._export_priors = None
        self._export_priors = self.priors(maps, image_size).clone()

    # --- decoding and post-processing ----------------------------------------------------------------------

    def decode(self, raw: tuple[Tensor, ...], image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        cls_logits, box_regression, priors = raw
        scores = F.softmax(cls_logits, dim=-1)[..., 1:]  # class 0 is the background
        return decode_boxes(box_regression, priors, self.cfg.box_weights, self.box_coder.bbox_xform_clip), scores

    # --- training ------------------------------------------------------------------------------------------

    def loss(self, raw: tuple[Tensor, ...], targets: Targets, image_size: tuple[int, int]) -> dict[str, Tensor]:
        """torchvision's SSD loss: smooth-L1 on matched offsets, cross-entropy on matched classes and the
        hardest negatives (``neg_to_pos_ratio`` per positive), both divided by the number of positives."""
        cls_logits, box_regression, priors = raw
        check_targets(targets, self.num_classes)
        num_foreground, box_losses, cls_targets = 0, [], []
        for target, regression, logits in zip(targets, box_regression, cls_logits):
            boxes, labels = target["boxes"].to(priors), target["labels"]
            if boxes.numel():
                matched = self.matcher(box_iou(boxes, priors))
            else:
                matched = torch.full((priors.shape[0],), -1, dtype=torch.int64, device=priors.device)
            fg = torch.where(matched >= 0)[0]
            fg_matched = matched[fg]
            num_foreground += fg.numel()
            encoded = self.box_coder.encode_single(boxes[fg_matched], priors[fg])
            box_losses.append(F.smooth_l1_loss(regression[fg], encoded, reduction="sum"))
            target_classes = torch.zeros(logits.shape[0], dtype=torch.int64, device=logits.device)
            target_classes[fg] = labels[fg_matched].to(torch.int64) + 1  # 0 is the background
            cls_targets.append(target_classes)
        cls_targets_t = torch.stack(cls_targets)
        cls_loss = F.cross_entropy(cls_logits.reshape(-1, cls_logits.shape[-1]), cls_targets_t.reshape(-1),
                                   reduction="none").view(cls_targets_t.shape)
        foreground = cls_targets_t > 0
        num_negative = self.cfg.neg_to_pos_ratio * foreground.sum(1, keepdim=True)
        negative_loss = cls_loss.clone()
        negative_loss[foreground] = -math.inf  # positives never count as negatives
        _, order = negative_loss.sort(1, descending=True)
        background = order.sort(1)[1] < num_negative  # rank of each default box among the negatives
        n = max(1, num_foreground)
        return {"bbox_regression": torch.stack(box_losses).sum() / n,
                "classification": (cls_loss[foreground].sum() + cls_loss[background].sum()) / n}


def decode_boxes(deltas: Tensor, priors: Tensor, weights: tuple[float, float, float, float], clip: float) -> Tensor:
    """(B, A, 4) offsets relative to (A, 4) ``xyxy`` priors -> (B, A, 4) ``xyxy`` boxes; the arithmetic of
    torchvision's ``BoxCoder.decode_single``, batched, in standard operators."""
    priors = priors.to(deltas.dtype)
    widths = priors[:, 2] - priors[:, 0]
    heights = priors[:, 3] - priors[:, 1]
    ctr_x = priors[:, 0] + 0.5 * widths
    ctr_y = priors[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
    dw, dh = (deltas[..., 2] / ww).clamp(max=clip), (deltas[..., 3] / wh).clamp(max=clip)
    pred_ctr_x, pred_ctr_y = dx * widths + ctr_x, dy * heights + ctr_y
    half_w, half_h = 0.5 * (torch.exp(dw) * widths), 0.5 * (torch.exp(dh) * heights)
    return torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), -1)


_SSDLITE = Paper(title="MobileNetV2: Inverted Residuals and Linear Bottlenecks (SSDLite, sec. 6.2); "
                       "Searching for MobileNetV3 (sec. 6.3)", url="https://arxiv.org/abs/1905.02244",
                 venue="CVPR 2018 / ICCV 2019")
_SSD = Paper(title="SSD: Single Shot MultiBox Detector; MobileNets (SSD 300, Table 13)",
             url="https://arxiv.org/abs/1512.02325", venue="ECCV 2016 / arXiv 2017")
_DETECTION_INPUT = DataConfig(input_size=(3, 320, 320), interpolation="bilinear", crop_pct=1.0, mean=(0.5, 0.5, 0.5),
                              std=(0.5, 0.5, 0.5))

VARIANTS: dict[str, Variant] = {
    "ssdlite320_mobilenetv3_large": Variant(
        cfg=SSDCfg(backbone="mobilenetv3_large_100", tap=TORCHVISION_TAP),
        figures=PaperFigures(params_m=3.44006, macs_g=0.583),
        reference=("torchvision:ssdlite320_mobilenet_v3_large",),
        notes="torchvision's model layer for layer (its weights load, the detections match); 21.3 COCO box mAP "
              "with torchvision's weights. The figures are torchvision's (3,440,060 params, 0.583 G ops at 320 px) "
              "for COCO's 90 classes plus the background."),
    "ssdlite320_lsnet_t": Variant(
        cfg=SSDCfg(backbone="lsnet_t"), paper=_SSDLITE,
        notes="SSDLite extras and predictors on LSNet-T's stride-16 and stride-32 stages (LSNet's own "
              "detection experiments use RetinaNet / Mask R-CNN; this lightweight pairing is ours)."),
    "ssd300_mobilenetv1": Variant(
        cfg=SSDCfg(backbone="mobilenetv1_100", lite=False, extra_chs=(512, 256, 256, 128),
                   post=PostprocessCfg(score_thresh=0.01, nms_thresh=0.45, topk_candidates=400,
                                       detections_per_img=200)),
        paper=_SSD, figures=PaperFigures(params_m=6.8, macs_g=1.2, complexity_tol=None),
        data_config=DataConfig(input_size=(3, 300, 300), crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        notes="The original SSD-MobileNet: SSD's 3x3 predictors and extra layers on MobileNetV1's conv11 / "
              "conv13 (stride 16 / 32), 300 px, six maps. The MobileNet paper's figures (COCO, 19.3 mAP, 6.8M "
              "params, 1.2 G mult-adds) count TensorFlow's variant, whose default boxes and extra layers differ "
              "in details: compared, not enforced."),
}

register_family(
    "ssd", SSD, VARIANTS, paper=_SSDLITE, data_config=_DETECTION_INPUT, task="detection",
    notes="Detector: model(images) -> [{boxes, scores, labels}] in eval mode, a dict of losses with targets in "
          "train mode. backbone= builds the same head on any registered classifier (backbone_kwargs= its options).",
    extra={"paper_num_classes": 90, "test_sizes": [(2, 3, 320, 320), (1, 3, 257, 193)]},
)
