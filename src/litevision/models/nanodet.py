"""Anchor-free "nano" detectors on any registered backbone — seed 003 ("YOLOv5-Lite / YOLOv8-Nano").

The design of the small anchor-free detectors (NanoDet-Plus, https://github.com/RangiLyu/nanodet; YOLOv8n,
Jocher et al. 2023; YOLOX-Nano, Ge et al. 2021, https://arxiv.org/abs/2107.08430), in their common form:

* **backbone** taps at strides 8, 16 and 32 (any registered classifier);
* **PAN neck** (Liu et al., PANet, CVPR 2018): 1x1 lateral convs to one width, a top-down path (nearest
  upsampling + add) and a bottom-up path (depthwise 3x3 stride-2 + add), each merge followed by a
  depthwise-separable 5x5 block (NanoDet-Plus's Ghost-PAN is of this kind);
* **decoupled head** per level (YOLOX / YOLOv8): a classification branch and a box branch, each two
  depthwise-separable convs; classes as sigmoid logits, boxes as distances to the four sides predicted as
  distributions over ``reg_max + 1`` bins (Generalized Focal Loss, Li et al., NeurIPS 2020; NanoDet-Plus's
  ``reg_max=7``, YOLOv8's 15), decoded by their expectation;
* **task-aligned assigner** (TOOD, Feng et al., ICCV 2021; YOLOv8's constants ``topk=10, alpha=0.5, beta=6``):
  for each object, among the anchor points inside its box, the ``topk`` with the best
  ``score^alpha * IoU^beta``; a point claimed by several objects goes to the best-overlapping one; soft class
  targets are the alignment normalised per object to its best IoU;
* **losses**: quality focal loss on the classes (GFL), GIoU on the boxes (``torchvision.ops``) and the
  distribution focal loss on the bins, weighted 1 / 2 / 0.25 as NanoDet-Plus, normalised by the sum of the
  soft targets.

Anchor points depend only on the feature-map sizes: computed per call (cached), fixed for an export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou, generalized_box_iou_loss

from litevision.layers import ConvNormAct
from litevision.models._builder import Variant, create_model, register_family
from litevision.models._card import DataConfig, Paper, PaperFigures
from litevision.models._detection import BackboneTaps, Detector, PostprocessCfg, Targets, check_targets

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class NanoCfg:
    """One nano detector: the backbone, the neck / head widths and the training assignment."""

    backbone: str = "shufflenetv2_100"  # any registered classification model with stride 8/16/32 stages
    neck_chs: int = 96
    head_convs: int = 2  # depthwise-separable convs per branch
    kernel_size: int = 5  # of the neck's merge blocks
    reg_max: int = 7  # box sides as distributions over reg_max + 1 bins (in strides)
    act_layer: str = "relu"
    topk: int = 10  # task-aligned assigner
    alpha: float = 0.5
    beta: float = 6.0
    loss_weights: tuple[float, float, float] = (1.0, 2.0, 0.25)  # classes (QFL), boxes (GIoU), bins (DFL)
    post: PostprocessCfg = PostprocessCfg(score_thresh=0.05, nms_thresh=0.6, topk_candidates=1000,
                                          detections_per_img=100)


def _dw_separable(in_chs: int, out_chs: int, kernel_size: int, act: str, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(ConvNormAct(in_chs, in_chs, kernel_size, stride=stride, groups=in_chs, act_layer=act),
                         ConvNormAct(in_chs, out_chs, 1, act_layer=act))


class PAN(nn.Module):
    """Path aggregation over three levels (strides 8, 16, 32) at one width."""

    def __init__(self, in_channels: list[int], chs: int, kernel_size: int, act: str) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(ConvNormAct(c, chs, 1, act_layer=act) for c in in_channels)
        n = len(in_channels)
        self.top_down = nn.ModuleList(_dw_separable(chs, chs, kernel_size, act) for _ in range(n - 1))
        self.downsample = nn.ModuleList(ConvNormAct(chs, chs, 3, stride=2, groups=chs, act_layer=act)
                                        for _ in range(n - 1))
        self.bottom_up = nn.ModuleList(_dw_separable(chs, chs, kernel_size, act) for _ in range(n - 1))

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral, features)]
        for i in range(len(lat) - 1, 0, -1):  # top-down: deeper maps refine the shallower ones
            up = F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="nearest")
            lat[i - 1] = self.top_down[i - 1](lat[i - 1] + up)
        outs = [lat[0]]
        for i in range(1, len(lat)):  # bottom-up: the refined shallow maps flow back to the deeper ones
            down = self.downsample[i - 1](outs[-1])
            down = down[..., : lat[i].shape[-2], : lat[i].shape[-1]]  # odd sizes: stride 2 may overshoot by one
            outs.append(self.bottom_up[i - 1](lat[i] + down))
        return outs


class DecoupledHead(nn.Module):
    """Per level: a classification branch and a box branch (YOLOX / YOLOv8 decoupling)."""

    def __init__(self, chs: int, num_levels: int, num_classes: int, num_bins: int, convs: int, act: str) -> None:
        super().__init__()

        def branch(out: int) -> nn.Sequential:
            return nn.Sequential(*[_dw_separable(chs, chs, 3, act) for _ in range(convs)], nn.Conv2d(chs, out, 1))

        self.cls_branches = nn.ModuleList(branch(num_classes) for _ in range(num_levels))
        self.box_branches = nn.ModuleList(branch(4 * num_bins) for _ in range(num_levels))
        prior = -math.log((1 - 0.01) / 0.01)  # every class starts at probability 0.01 (RetinaNet, GFL)
        for b in self.cls_branches:
            nn.init.normal_(b[-1].weight, std=0.01)
            nn.init.constant_(b[-1].bias, prior)
        for b in self.box_branches:
            nn.init.normal_(b[-1].weight, std=0.01)
            nn.init.zeros_(b[-1].bias)

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        cls, box = [], []
        for x, cls_branch, box_branch in zip(features, self.cls_branches, self.box_branches):
            cls.append(cls_branch(x).flatten(2))
            box.append(box_branch(x).flatten(2))
        # (B, K, A) -> (B, A, K), anchor points level by level, row-major within a level
        return torch.cat(cls, 2).transpose(1, 2), torch.cat(box, 2).transpose(1, 2)


class NanoDetector(Detector):
    """Backbone taps -> PAN -> decoupled head; ``forward_raw`` gives (class logits, box bins, anchor points)."""

    def __init__(self, cfg: NanoCfg, num_classes: int = 80, in_chans: int = 3, drop_path_rate: float = 0.0) -> None:
        super().__init__(cfg.post)
        self.cfg, self.num_classes, self.in_chans = cfg, num_classes, in_chans
        body = create_model(cfg.backbone, num_classes=0, in_chans=in_chans, drop_path_rate=drop_path_rate or None)
        self.backbone = BackboneTaps(body, STRIDES)
        self.neck = PAN(self.backbone.out_channels, cfg.neck_chs, cfg.kernel_size, cfg.act_layer)
        self.head = DecoupledHead(cfg.neck_chs, len(STRIDES), num_classes, cfg.reg_max + 1, cfg.head_convs,
                                  cfg.act_layer)
        self.register_buffer("bins", torch.arange(cfg.reg_max + 1, dtype=torch.float32), persistent=False)
        self.feature_info = [{"num_chs": cfg.neck_chs, "reduction": s, "module": f"neck.{i}"}
                             for i, s in enumerate(STRIDES)]
        self._points: dict[tuple, Tensor] = {}
        self._export_points: Tensor | None = None

    # --- network -----------------------------------------------------------------------------------------

    def forward_raw(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(cls_logits (B, A, C), box_bins (B, A, 4 * (reg_max + 1)), points (A, 3))``; ``points`` are the
        anchor points ``(x, y, stride)`` in pixels of this input size (a constant of an exported graph)."""
        maps = self.neck(self.backbone(images))
        cls_logits, box_bins = self.head(maps)
        return cls_logits, box_bins, self.anchor_points(maps)

    def anchor_points(self, maps: list[Tensor]) -> Tensor:
        if self._export_points is not None:
            return self._export_points
        key = (*(tuple(m.shape[-2:]) for m in maps), maps[0].dtype, maps[0].device)
        if key not in self._points:
            levels = []
            for m, stride in zip(maps, STRIDES):
                h, w = m.shape[-2:]
                ys, xs = torch.meshgrid(torch.arange(h, dtype=m.dtype, device=m.device),
                                        torch.arange(w, dtype=m.dtype, device=m.device), indexing="ij")
                pts = torch.stack(((xs.flatten() + 0.5) * stride, (ys.flatten() + 0.5) * stride,
                                   torch.full((h * w,), float(stride), dtype=m.dtype, device=m.device)), -1)
                levels.append(pts)
            self._points[key] = torch.cat(levels)
        return self._points[key]

    def prepare_export(self, image_size: tuple[int, int]) -> None:
        """Fix the anchor points of ``image_size`` so the exported graph holds them as a constant."""
        with torch.no_grad():
            maps = self.neck(self.backbone(torch.zeros(1, self.in_chans, *image_size)))
        self._export_points = None
        self._export_points = self.anchor_points(maps).clone()

    # --- decoding ------------------------------------------------------------------------------------------

    def distances(self, box_bins: Tensor, strides: Tensor) -> Tensor:
        """(B, A, 4 * bins) logits -> (B, A, 4) distances (left, top, right, bottom) in pixels."""
        probs = box_bins.unflatten(-1, (4, -1)).softmax(-1)
        return (probs * self.bins.to(probs)).sum(-1) * strides[:, None]

    def decode(self, raw: tuple[Tensor, ...], image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        cls_logits, box_bins, points = raw
        dist = self.distances(box_bins, points[:, 2])
        xy = points[:, :2]
        return torch.cat((xy - dist[..., :2], xy + dist[..., 2:]), -1), cls_logits.sigmoid()

    # --- training ------------------------------------------------------------------------------------------

    def loss(self, raw: tuple[Tensor, ...], targets: Targets, image_size: tuple[int, int]) -> dict[str, Tensor]:
        cls_logits, box_bins, points = raw
        check_targets(targets, self.num_classes)
        boxes, scores = self.decode(raw, image_size)
        cls_targets = torch.zeros_like(cls_logits)
        pos_pred, pos_bins, pos_target, pos_weight, pos_points = [], [], [], [], []
        for i, target in enumerate(targets):
            gt_boxes, gt_labels = target["boxes"].to(boxes), target["labels"].to(torch.int64)
            if not gt_boxes.numel():
                continue
            fg, gt_index, soft = self.assign(scores[i].detach(), boxes[i].detach(), points, gt_boxes, gt_labels)
            cls_targets[i, fg, gt_labels[gt_index]] = soft
            pos_pred.append(boxes[i, fg])
            pos_bins.append(box_bins[i, fg])
            pos_target.append(gt_boxes[gt_index])
            pos_weight.append(soft)
            pos_points.append(points[fg])
        norm = cls_targets.sum().clamp(min=1.0)
        w_cls, w_box, w_dfl = self.cfg.loss_weights
        losses = {"classification": w_cls * quality_focal_loss(cls_logits, cls_targets).sum() / norm}
        if pos_pred:
            pred, bins = torch.cat(pos_pred), torch.cat(pos_bins)
            target_boxes, weight, pts = torch.cat(pos_target), torch.cat(pos_weight), torch.cat(pos_points)
            giou = generalized_box_iou_loss(pred, target_boxes, reduction="none")
            losses["bbox_regression"] = w_box * (giou * weight).sum() / norm
            dfl = distribution_focal_loss(bins, _side_distances(pts, target_boxes), self.cfg.reg_max)
            losses["distribution"] = w_dfl * (dfl * weight).sum() / norm
        else:  # no object in the batch: zero box losses that still reach the box branch
            losses["bbox_regression"] = losses["distribution"] = box_bins.sum() * 0.0
        return losses

    @torch.no_grad()
    def assign(self, scores: Tensor, boxes: Tensor, points: Tensor, gt_boxes: Tensor, gt_labels: Tensor
               ) -> tuple[Tensor, Tensor, Tensor]:
        """Task-aligned assignment for one image -> (foreground point indices, their object index, their soft
        class target)."""
        inside = ((points[None, :, 0] > gt_boxes[:, None, 0]) & (points[None, :, 0] < gt_boxes[:, None, 2])
                  & (points[None, :, 1] > gt_boxes[:, None, 1]) & (points[None, :, 1] < gt_boxes[:, None, 3]))
        ious = box_iou(gt_boxes, boxes).clamp(min=0) * inside  # (M, A)
        align = scores[:, gt_labels].T.pow(self.cfg.alpha) * ious.pow(self.cfg.beta) * inside
        k = min(self.cfg.topk, align.shape[1])
        # top-k per object among its inside points; ties at zero alignment go to the inside points first
        ranking = align + inside.to(align) * 1e-9
        top = torch.zeros_like(inside)
        top.scatter_(1, ranking.topk(k, dim=1).indices, True)
        candidate = top & inside
        # a point claimed by several objects goes to the one it overlaps most
        claims = candidate.sum(0)
        best = ious.argmax(0)
        multiple = claims > 1
        candidate[:, multiple] = False
        candidate[best[multiple], multiple.nonzero().squeeze(1)] = True
        fg = candidate.any(0).nonzero().squeeze(1)
        gt_index = candidate[:, fg].to(torch.int64).argmax(0)
        align = align * candidate
        norm_align = align * (ious * candidate).amax(1, keepdim=True) / (align.amax(1, keepdim=True) + 1e-9)
        return fg, gt_index, norm_align[gt_index, fg]


def _side_distances(points: Tensor, boxes: Tensor) -> Tensor:
    """Distances from anchor points (x, y, stride) to the sides of their boxes, in strides."""
    xy, stride = points[:, :2], points[:, 2:]
    return torch.cat((xy - boxes[:, :2], boxes[:, 2:] - xy), -1) / stride


def quality_focal_loss(logits: Tensor, targets: Tensor, beta: float = 2.0) -> Tensor:
    """Quality focal loss (GFL, Li et al. 2020): binary cross-entropy against soft IoU-quality targets,
    modulated by ``|sigmoid(logit) - target| ** beta``; elementwise."""
    modulator = (logits.sigmoid() - targets).abs().pow(beta)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * modulator


def distribution_focal_loss(bins: Tensor, distances: Tensor, reg_max: int) -> Tensor:
    """Distribution focal loss (GFL): each side's target distance ``t`` in strides (clamped to the bins) is
    shared between the two nearest bins in proportion to closeness; cross-entropy per side, averaged."""
    t = distances.clamp(0, reg_max - 0.01)
    left = t.floor().long()
    w_right = t - left
    logp = bins.unflatten(-1, (4, -1)).log_softmax(-1)
    loss = -(logp.gather(-1, left[..., None]).squeeze(-1) * (1 - w_right)
             + logp.gather(-1, (left + 1)[..., None]).squeeze(-1) * w_right)
    return loss.mean(-1)


_NANO = Paper(title="NanoDet-Plus (super fast and lightweight anchor-free detector); YOLOv8 head and task-aligned "
                    "assigner (TOOD)", url="https://github.com/RangiLyu/nanodet", venue="2021 / ICCV 2021")

VARIANTS: dict[str, Variant] = {
    "shufflenetv2_100_nano": Variant(
        cfg=NanoCfg(backbone="shufflenetv2_100"),
        figures=PaperFigures(params_m=1.17, complexity_tol=None),
        notes="The NanoDet-Plus-m pairing (ShuffleNetV2 1.0x, 96-wide neck, 320 px; 1.17M params, 0.9 G FLOPs, "
              "27.0 COCO mAP). Our neck and head are the simpler PAN + decoupled form described in the module "
              "docstring, without NanoDet-Plus's auxiliary assign-guidance head or its fourth, stride-64 level: "
              "compared, not enforced."),
    "lsnet_t_nano": Variant(cfg=NanoCfg(backbone="lsnet_t"),
                            notes="The same neck and head on LSNet-T's stride 8/16/32 stages."),
    "mobilenetv3_large_100_nano": Variant(cfg=NanoCfg(backbone="mobilenetv3_large_100"),
                                          notes="The same neck and head on MobileNetV3-Large."),
    "lcnet_t_nano": Variant(cfg=NanoCfg(backbone="lcnet_t"), notes="The same neck and head on LCNet-T."),
}

register_family(
    "nanodet", NanoDetector, VARIANTS, paper=_NANO, task="detection",
    data_config=DataConfig(input_size=(3, 320, 320), interpolation="bilinear", crop_pct=1.0),
    notes="Anchor-free detector: model(images) -> [{boxes, scores, labels}] in eval mode, a dict of losses with "
          "targets in train mode. backbone= puts the same neck and head on any registered classifier.",
    extra={"paper_num_classes": 80, "test_sizes": [(2, 3, 320, 320), (1, 3, 257, 193)]},
)
