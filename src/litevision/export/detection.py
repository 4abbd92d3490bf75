"""Detector export: the network's decoded outputs for one input size, optionally with in-graph NMS.

Two graphs, both with a dynamic batch and the priors / anchor points of the exported size as constants:

* **raw** (default): ``input (B, 3, H, W)`` -> ``boxes (B, A, 4)`` ``xyxy`` pixels and ``scores (B, A, C)``, every
  candidate; the runtime's own NMS (OpenCV's ``cv2.dnn.NMSBoxesBatched``, a deploy SDK's) finishes the job.
  Verified in onnxruntime (batch 1 and > 1) and in OpenCV DNN (batch 1).
* **with NMS** (``nms=True``): ``input`` -> ``detections (N, 7)`` rows ``(batch index, x1, y1, x2, y2, score,
  label)``: per class the ``topk_candidates`` best scores above ``score_thresh``, then ONNX
  ``NonMaxSuppression`` (standard operator, opset >= 11) at ``nms_thresh``, at most ``detections_per_img`` per
  class. Keeping the ``detections_per_img`` best rows of each image gives PyTorch's post-processing
  (:func:`litevision.models.select_detections`), which is what the verification compares in onnxruntime.
  Exported with the TorchScript-based exporter (the NMS node comes from a ``symbolic`` function).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

from litevision.export.onnx import export_onnx, ort_session
from litevision.export.verify import ParityCheck, Runner, check_parity
from litevision.layers.fuse import fuse_model
from litevision.models import DataConfig, Detector, DetectorExport, PostprocessCfg
from litevision.utils.optional import require

log = logging.getLogger(__name__)
RAW_OUTPUTS = ("boxes", "scores")
NMS_OUTPUT = "detections"


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` (boxes (B, A, 4) ``xyxy``, scores (B, C, A)) -> selected (N, 3) rows
    ``(batch, class, box)``; eager mode computes the same with ``torchvision.ops``."""

    @staticmethod
    def forward(ctx: Any, boxes: Tensor, scores: Tensor, max_per_class: Tensor, iou: Tensor,  # noqa: ARG004
                score_thresh: Tensor) -> Tensor:
        rows = []
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                s = scores[b, c]
                keep = torch.nonzero(s > score_thresh).squeeze(1)
                order = batched_nms(boxes[b, keep], s[keep], torch.zeros_like(keep), float(iou))
                picked = keep[order[: int(max_per_class)]]
                rows.append(torch.stack((torch.full_like(picked, b), torch.full_like(picked, c), picked), 1))
        return torch.cat(rows) if rows else torch.zeros(0, 3, dtype=torch.int64)

    @staticmethod
    def symbolic(g: Any, boxes: Any, scores: Any, max_per_class: Any, iou: Any, score_thresh: Any) -> Any:
        return g.op("NonMaxSuppression", boxes, scores, max_per_class, iou, score_thresh, center_point_box_i=0)


class DetectorWithNMS(nn.Module):
    """:class:`DetectorExport` followed by per-class top-k, ``NonMaxSuppression`` and a gather to (N, 7) rows."""

    def __init__(self, detector: Detector, image_size: tuple[int, int], post: PostprocessCfg | None = None) -> None:
        super().__init__()
        self.net = DetectorExport(detector, image_size)
        self.post = post or detector.post
        self.image_size = self.net.image_size

    def forward(self, images: Tensor) -> Tensor:
        boxes, scores = self.net(images)
        h, w = self.image_size
        boxes = torch.stack((boxes[..., 0].clamp(0, w), boxes[..., 1].clamp(0, h), boxes[..., 2].clamp(0, w),
                             boxes[..., 3].clamp(0, h)), -1)  # clipped to the image, as select_detections does
        batch, anchors, classes = scores.shape
        k = min(self.post.topk_candidates, anchors)
        top_scores, top_index = scores.transpose(1, 2).topk(k, dim=2)  # (B, C, k)
        top_boxes = boxes.gather(1, top_index.reshape(batch, classes * k, 1).expand(-1, -1, 4))
        top_boxes = top_boxes.reshape(batch * classes, k, 4)  # each (image, class) pair is its own NMS "batch"
        flat_scores = top_scores.reshape(batch * classes, 1, k)
        selected = _NonMaxSuppression.apply(
            top_boxes, flat_scores, torch.tensor([self.post.detections_per_img], dtype=torch.int64),
            torch.tensor([self.post.nms_thresh], dtype=torch.float32),
            torch.tensor([self.post.score_thresh], dtype=torch.float32))
        pair, index = selected[:, 0], selected[:, 2]
        det_boxes = top_boxes[pair, index]
        det_scores = flat_scores[pair, 0, index]
        image = torch.div(pair, classes, rounding_mode="floor")
        label = pair - image * classes
        return torch.cat((image.to(det_boxes.dtype)[:, None], det_boxes, det_scores[:, None],
                          label.to(det_boxes.dtype)[:, None]), 1)


def rows_to_detections(rows: Tensor, batch: int, limit: int) -> list[dict[str, Tensor]]:
    """(N, 7) rows of the NMS graph -> one dict per image (``boxes``, ``scores``, ``labels``), each image's
    ``limit`` best by score (the per-image cut of PyTorch's post-processing)."""
    out = []
    for b in range(batch):
        r = rows[rows[:, 0] == b]
        r = r[r[:, 5].argsort(descending=True, stable=True)][:limit]
        out.append({"boxes": r[:, 1:5], "scores": r[:, 5], "labels": r[:, 6].to(torch.int64)})
    return out


def _output(runner: Runner, index: int) -> Runner:
    return lambda x: runner(x)[index]


def _multi_module_runner(module: nn.Module) -> Runner:
    def run(x: Tensor) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return tuple(module(x))

    return run


def _multi_onnx_runner(session: Any) -> Runner:
    name = session.get_inputs()[0].name

    def run(x: Tensor) -> tuple[Tensor, ...]:
        return tuple(torch.from_numpy(o) for o in session.run(None, {name: x.numpy().astype(np.float32)}))

    return run


def _multi_opencv_runner(path: Path) -> Runner:
    cv2 = require("cv2", "export")
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    names = list(RAW_OUTPUTS)

    def run(x: Tensor) -> tuple[Tensor, ...]:
        net.setInput(np.ascontiguousarray(x.numpy().astype(np.float32)))
        return tuple(torch.from_numpy(np.array(o, dtype=np.float32)) for o in net.forward(names))

    return run


def _raw_checks(target: str, reference: Runner, exported: Runner, inputs: dict[str, Tensor], verify_batch: int,
                batch_one_only: bool = False) -> list[ParityCheck]:
    """Boxes (pixels: 1e-3 px + 1e-4 relative) and scores (1e-4) compared separately."""
    checks = []
    for i, name in enumerate(RAW_OUTPUTS):
        tol = {"atol": 1e-3, "rtol": 1e-5} if name == "boxes" else {"atol": 1e-4, "rtol": 1e-3}
        checks += check_parity(f"{target}:{name}", _output(reference, i), _output(exported, i), inputs,
                               batch_size=verify_batch, batch_one_only=batch_one_only, **tol)
    return checks


def _nms_checks(model: Detector, session: Any, inputs: dict[str, Tensor], image_size: tuple[int, int],
                verify_batch: int) -> list[ParityCheck]:
    """Detections of the NMS graph (batch 1 and ``verify_batch``) against ``model.postprocess``: the same
    number per image, the same labels and boxes / scores within 1e-3 after sorting by score."""
    checks = []
    run = _multi_onnx_runner(session)
    for name, x in inputs.items():
        with torch.no_grad():
            expected = model.postprocess(model.forward_raw(x), image_size)
        for bs in (1, verify_batch):
            got: list[dict[str, Tensor]] = []
            for i in range(0, x.shape[0], bs):
                chunk = x[i: i + bs]
                got += rows_to_detections(run(chunk)[0], chunk.shape[0], model.post.detections_per_img)
            problems = [f"image {j}: {p}" for j, (e, g) in enumerate(zip(expected, got))
                        if (p := _compare_detections(e, g, model.post.score_thresh))]
            total = sum(int(e["scores"].numel()) for e in expected)
            checks.append(ParityCheck(
                target="onnxruntime:nms", inputs=name, batch_size=bs, input_hw=tuple(x.shape[-2:]),
                samples=x.shape[0], max_abs_diff=float("nan") if problems else 0.0, tolerance=1e-3,
                top1_agreement=0.0 if problems else 1.0, min_agreement=None, batch_consistency_diff=0.0,
                passed=not problems, message="; ".join(problems[:3]) or f"{total} detections identical"))
    return checks


def _compare_detections(expected: dict[str, Tensor], got: dict[str, Tensor], score_thresh: float,
                        tol: float = 1e-3) -> str:
    """'' when both runtimes found the same detections. A score within ``tol`` of the threshold may fall on
    either side of it in two runtimes (float rounding): such detections are left out of the comparison."""
    expected, got = (_away_from(d, score_thresh, tol) for d in (expected, got))
    if expected["scores"].numel() != got["scores"].numel():
        return f"{got['scores'].numel()} detections, PyTorch has {expected['scores'].numel()}"
    if not expected["scores"].numel():
        return ""
    if float((expected["scores"] - got["scores"]).abs().max()) > tol:
        return "scores differ"
    # equal scores may come in either order: compare as sets of (label, box)
    e = torch.cat((expected["labels"][:, None].float(), expected["boxes"]), 1)
    g = torch.cat((got["labels"][:, None].float(), got["boxes"]), 1)
    unmatched = (torch.cdist(e, g, p=float("inf")).min(1).values > tol).sum()
    return f"{int(unmatched)} boxes / labels without a match" if unmatched else ""


def _away_from(d: dict[str, Tensor], score_thresh: float, tol: float) -> dict[str, Tensor]:
    keep = (d["scores"] - score_thresh).abs() > tol
    return {k: v[keep] for k, v in d.items()}


def export_detector(
    model: Detector,
    model_spec: str,
    data_config: DataConfig,
    output_dir: str | os.PathLike[str],
    *,
    stem: str,
    inputs: dict[str, Tensor],
    nms: bool = False,
    verify_batch: int = 4,
    opset: int = 18,
    exporter: str = "dynamo",
    runtimes: Sequence[str] = ("onnxruntime", "opencv"),
) -> dict[str, Any]:
    """Fuse, export and verify a detector (see the module docstring); returns the report's fields."""
    image_size = (int(data_config.input_size[1]), int(data_config.input_size[2]))
    reference = copy.deepcopy(model).eval()
    deploy = fuse_model(copy.deepcopy(model)).eval()
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_module = DetectorExport(copy.deepcopy(deploy), image_size).eval()
    raw = export_onnx(raw_module, out_dir / f"{stem}.onnx", input_size=data_config.input_size, opset=opset,
                      exporter=exporter, dynamic_hw=False, output_names=RAW_OUTPUTS)
    files, notes = [raw.path], list(raw.notes)
    ref_raw = _multi_module_runner(DetectorExport(copy.deepcopy(reference), image_size).eval())
    checks: list[ParityCheck] = []
    if "onnxruntime" in runtimes:
        checks += _raw_checks("onnxruntime", ref_raw, _multi_onnx_runner(ort_session(raw.path)), inputs,
                              verify_batch)
    if "opencv" in runtimes:
        limit = (getattr(getattr(model, "card", None), "runtime_limits", None) or {}).get("opencv")
        if limit:
            notes.append(f"not verified in OpenCV DNN: {limit}")
        else:
            try:
                runner = _multi_opencv_runner(raw.path)
                checks += _raw_checks("opencv", ref_raw, runner, inputs, verify_batch, batch_one_only=True)
            except Exception as e:  # cv2.error: the importer refuses the graph
                message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                checks.append(ParityCheck(target="opencv", inputs="load", batch_size=1, input_hw=image_size,
                                          samples=0, max_abs_diff=float("nan"), tolerance=None, top1_agreement=0.0,
                                          min_agreement=None, batch_consistency_diff=float("nan"), passed=False,
                                          message=f"OpenCV DNN cannot load the graph: {message[:300]}"))
    details: dict[str, Any] = {"opset": raw.opset, "exporter": raw.exporter, "domains": raw.domains,
                               "cleanup": raw.cleanup, "outputs": list(RAW_OUTPUTS), "image_size": list(image_size),
                               "postprocess": asdict(model.post)}
    if nms:
        nms_module = DetectorWithNMS(copy.deepcopy(deploy), image_size, model.post).eval()
        nms_info = export_onnx(nms_module, out_dir / f"{stem}_nms.onnx", input_size=data_config.input_size,
                               opset=opset, exporter="legacy", dynamic_hw=False, output_names=(NMS_OUTPUT,),
                               dynamic_outputs={NMS_OUTPUT: {0: "detections"}})
        files.append(nms_info.path)
        details["nms_domains"] = nms_info.domains
        if "onnxruntime" in runtimes:
            nms_checks = _nms_checks(reference, ort_session(nms_info.path), inputs, image_size, verify_batch)
            if all(c.message.startswith("0 detections") for c in nms_checks):
                notes.append(f"no candidate scores above score_thresh={model.post.score_thresh} on the parity "
                             "inputs (an untrained model?): the NMS graph was only checked to find none too")
            checks += nms_checks
    return {"files": files, "checks": checks, "details": details, "notes": notes,
            "path": files[-1] if nms else raw.path}
