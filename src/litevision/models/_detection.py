"""What every detector shares: the detector contract, post-processing and the parts of training that do not
depend on the head (the SSD and the anchor-free families build on it).

Contract (torchvision's detection models, with a batched tensor input so export and batching stay simple):

* ``model(images)`` in eval mode -> one dict per image: ``boxes`` (N, 4) ``xyxy`` in input pixels, ``scores``
  (N,) and ``labels`` (N,) in ``0 .. num_classes - 1`` (no background index: unlike torchvision, where label
  0 is the background, our labels are the dataset's classes);
* ``model(images, targets)`` in train mode -> a dict of losses (their sum is the training loss), ``targets``
  one dict per image with ``boxes`` (M, 4) ``xyxy`` pixels and ``labels`` (M,);
* ``model.forward_raw(images)`` -> the network's outputs before any decoding (what export starts from);
* ``model.decode(raw, image_size)`` -> ``(boxes (B, A, 4), scores (B, A, C))``: every candidate box and its
  per-class scores, in standard operators (the exported graph without NMS);
* ``model.postprocess(raw, image_size)`` -> the per-image dicts: score threshold, per-class top-k, class-wise
  NMS (``torchvision.ops.batched_nms``) and the per-image limit, with the settings in ``model.post``.

Priors / anchor points depend on the input size: they are computed from the feature-map sizes of each call
(and cached per size), so any input size works in eager mode; an export bakes those of the exported size into
the graph as constants (:class:`DetectorExport`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from typing import Any

from timm.models import adapt_input_conv
from torch import Tensor, nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from litevision.models._builder import create_model
from litevision.models._saved import is_litevision_weights, load_trained_model, resolve_weights_path
from litevision.models._weights import CheckpointMismatchError

log = logging.getLogger(__name__)

Detections = list[dict[str, Tensor]]
Targets = list[dict[str, Tensor]]


@dataclass(frozen=True)
class PostprocessCfg:
    """Post-processing of :meth:`Detector.postprocess`: candidates scoring above ``score_thresh``, the best
    ``topk_candidates`` per class, class-wise NMS at ``nms_thresh``, at most ``detections_per_img``."""

    score_thresh: float = 0.01
    nms_thresh: float = 0.5
    topk_candidates: int = 300
    detections_per_img: int = 100


class Detector(nn.Module):
    """Base class: subclasses provide :meth:`forward_raw`, :meth:`decode` and :meth:`loss`."""

    task = "detection"
    num_classes: int
    in_chans: int

    def __init__(self, post: PostprocessCfg) -> None:
        super().__init__()
        self.post = post

    def forward(self, images: Tensor, targets: Targets | None = None) -> dict[str, Tensor] | Detections:
        raw = self.forward_raw(images)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        if self.training:
            if targets is None:
                raise ValueError(f"{type(self).__name__} in train mode needs targets (a list of dicts with boxes "
                                 "and labels, one per image); call .eval() to detect")
            return self.loss(raw, targets, size)
        return self.postprocess(raw, size)

    def forward_raw(self, images: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def decode(self, raw: tuple[Tensor, ...], image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def loss(self, raw: tuple[Tensor, ...], targets: Targets, image_size: tuple[int, int]) -> dict[str, Tensor]:
        raise NotImplementedError

    def set_postprocess(self, **changes: Any) -> None:
        """Change the post-processing settings (``score_thresh``, ``nms_thresh``, ...)."""
        self.post = replace(self.post, **changes)

    def postprocess(self, raw: tuple[Tensor, ...], image_size: tuple[int, int]) -> Detections:
        boxes, scores = self.decode(raw, image_size)
        return [select_detections(b, s, image_size, self.post) for b, s in zip(boxes, scores)]

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError(f"{type(self).__name__}: build it with num_classes instead")

    def load_backbone(self, checkpoint: str | os.PathLike[str]) -> Detector:
        """Start the backbone from a trained classifier of its architecture (``cfg.backbone``): a litevision run
        folder or weights file (the model is rebuilt from its metadata), or foreign weights of the classifier
        (torchvision / timm / official layouts at the card's 1000 classes, as ``create_model(checkpoint_path=)``).

        The classifier's head and the stages after the deepest tap are left out. A stem trained on another
        number of input channels (grey Fashion-MNIST for an RGB detector) is adapted as timm's
        ``adapt_input_conv``: its kernels repeated over the new channels and scaled by old / new. Any other
        difference is an error naming the tensors; the neck and heads keep their initialization."""
        path = resolve_weights_path(checkpoint)
        name = self.cfg.backbone
        wanted = getattr(self, "backbone_kwargs", {})
        hint = ""
        if is_litevision_weights(path):
            classifier, meta = load_trained_model(path)
            if meta["model"] != name or meta.get("task", "classification") != "classification":
                raise CheckpointMismatchError(f"{path} holds a {meta.get('task', 'classification')} model "
                                              f"{meta['model']}; this detector's backbone is the classifier {name}")
            trained = {k: v for k, v in (meta.get("model_kwargs") or {}).items() if k != "structure"}
            differ = {k: v for k, v in wanted.items() if trained.get(k) != v}
            if differ:  # e.g. SSDLite's MobileNetV3 with the reduced tail, from a classifier trained without it
                sets = " ".join(f"--set model.kwargs.{k}={json.dumps(v)}" for k, v in differ.items())
                hint = (f". This detector builds {name} with {differ}, the classifier was built with "
                        f"{ {k: trained.get(k, 'its default') for k in differ} }: train the classifier with {sets}")
        else:
            classifier = create_model(name, checkpoint_path=path, **wanted)
        source, own = classifier.state_dict(), self.backbone.state_dict()
        loaded, missing, mismatched = {}, [], []
        for key, tensor in own.items():
            src = source.get(key.removeprefix("body."))
            if src is None:
                missing.append(key)
            elif src.shape != tensor.shape:
                adapted = _adapt_input_conv(src, tensor.shape)
                if adapted is None:
                    mismatched.append(f"{key} {tuple(src.shape)} vs {tuple(tensor.shape)}")
                src = adapted
            loaded[key] = src
        if missing or mismatched:
            what = "; ".join(part for part in (
                missing and f"{len(missing)} tensors missing (first {missing[0]})",
                mismatched and f"{len(mismatched)} of another shape (first {mismatched[0]})") if part)
            raise CheckpointMismatchError(f"{path} does not fit the {name} backbone of {type(self).__name__}: "
                                          f"{what}{hint}")
        self.backbone.load_state_dict(loaded, strict=True)
        log.info("backbone %s initialized from %s (%d tensors; the classifier's head left out)", name, path,
                 len(loaded))
        return self


def _adapt_input_conv(weight: Tensor, shape: tuple[int, ...] | Any) -> Tensor | None:
    """A stem convolution trained on ``weight.shape[1]`` input channels for ``shape[1]`` channels, by timm's
    ``adapt_input_conv`` (kernels repeated over the new channels, scaled by old / new: a grey image copied to every
    channel gives the same response); ``None`` when the shapes differ otherwise."""
    if weight.ndim != 4 or len(shape) != 4 or weight.shape[0] != shape[0] or weight.shape[2:] != tuple(shape[2:]):
        return None
    return adapt_input_conv(shape[1], weight, base_chans=weight.shape[1])


def select_detections(boxes: Tensor, scores: Tensor, image_size: tuple[int, int], post: PostprocessCfg
                      ) -> dict[str, Tensor]:
    """One image: (A, 4) boxes and (A, C) class scores -> its detections, torchvision's SSD algorithm: boxes
    clipped to the image, per class the candidates above the threshold and the best ``topk_candidates`` of them,
    NMS within each class, the ``detections_per_img`` best overall."""
    boxes = clip_boxes_to_image(boxes, image_size)
    # All classes at once: the best ``topk_candidates`` boxes of each class, then those above the threshold.
    # The same set as thresholding first (the best k of those above it are the ones of the best k above it),
    # in the same class-major, best-first order, without a Python loop over the classes.
    top, idx = scores.topk(min(post.topk_candidates, scores.shape[0]), dim=0)
    top, idx = top.T, idx.T
    keep = top > post.score_thresh
    label = keep.nonzero()[:, 0]
    box, score = boxes[idx[keep]], top[keep]
    keep = batched_nms(box, score, label, post.nms_thresh)[: post.detections_per_img]
    return {"boxes": box[keep], "scores": score[keep], "labels": label[keep]}


class BackboneTaps(nn.Module):
    """Any registered classifier as a detection backbone: the outputs of its deepest stage at each of
    ``reductions`` (e.g. 16 and 32 for SSD, 8 / 16 / 32 for the anchor-free heads). The stages after the last
    one tapped, the neck and the classifier are replaced by ``Identity`` (no unused parameters)."""

    def __init__(self, body: nn.Module, reductions: tuple[int, ...]) -> None:
        super().__init__()
        have = [f["reduction"] for f in body.feature_info]
        missing = [r for r in reductions if r not in have]
        if missing:
            name = getattr(body, "model_name", type(body).__name__)
            raise ValueError(f"backbone {name} has no stage of reduction {missing[0]} (its stages: {have})")
        self.indices = tuple(max(i for i, h in enumerate(have) if h == r) for r in reductions)
        self.out_channels = [body.feature_info[i]["num_chs"] for i in self.indices]
        _drop_after(body, max(self.indices))
        self.body = body

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.body.forward_intermediates(x, self.indices)


def _drop_after(body: nn.Module, last: int) -> None:
    """Replace the stages after ``last``, the neck and the classifier head of ``body`` by ``Identity``."""
    unused = {id(s) for s in list(body.stage_list())[last + 1:]} if hasattr(body, "stage_list") else set()
    for module in list(body.modules()):
        for child_name, child in list(module.named_children()):
            if id(child) in unused:
                setattr(module, child_name, nn.Identity())
    for attr in ("neck", "head", "fc"):
        if isinstance(getattr(body, attr, None), nn.Module):
            setattr(body, attr, nn.Identity())


class DetectorExport(nn.Module):
    """The exportable part of a detector for one input size: images -> ``boxes`` (B, A, 4) ``xyxy`` pixels and
    ``scores`` (B, A, C). Priors / anchor points are computed once for ``image_size`` and become constants of
    the graph; NMS is left to the runtime (or added as ONNX ``NonMaxSuppression`` by the exporter)."""

    def __init__(self, detector: Detector, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.detector = detector
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.detector.prepare_export(self.image_size)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.detector.decode(self.detector.forward_raw(images), self.image_size)


def check_targets(targets: Targets, num_classes: int) -> None:
    """Boxes must be (M, 4) ``xyxy`` with positive size and labels within the classes."""
    for i, t in enumerate(targets):
        boxes, labels = t["boxes"], t["labels"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or labels.shape[0] != boxes.shape[0]:
            raise ValueError(f"target {i}: boxes must be (M, 4) with M labels, got {tuple(boxes.shape)} and "
                             f"{tuple(labels.shape)}")
        if boxes.numel() and bool((boxes[:, 2:] <= boxes[:, :2]).any()):
            raise ValueError(f"target {i}: a box has no area (xyxy expected): {boxes.tolist()[:3]}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"target {i}: labels must be in 0..{num_classes - 1}, got {labels.tolist()[:8]}")
