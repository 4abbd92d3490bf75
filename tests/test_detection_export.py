"""Detector export: raw outputs (onnxruntime and OpenCV DNN) and in-graph NMS (onnxruntime) against PyTorch."""

from __future__ import annotations

import pytest
import torch

import litevision as lv
from litevision.export import DetectorWithNMS, export_model, rows_to_detections
from litevision.models import DetectorExport

pytest.importorskip("onnxruntime")


def _model(name: str, keep: float = 0.02) -> torch.nn.Module:
    """A detector whose random predictors give well-spread scores (an untrained one scores every class of every
    box alike, and NMS among equal scores keeps an arbitrary one), with the score threshold that keeps about
    ``keep`` of the candidates of a random image."""
    torch.manual_seed(0)
    model = lv.create_model(name, num_classes=4).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and m.bias is not None:  # the predictors' last convolutions
            torch.nn.init.normal_(m.weight, std=0.5)
    with torch.no_grad():
        _, scores = model.decode(model.forward_raw(torch.randn(1, 3, 128, 128)), (128, 128))
    model.set_postprocess(score_thresh=float(scores.flatten().quantile(1 - keep)))
    return model


def test_nms_module_equals_postprocessing_in_eager_mode() -> None:
    model = _model("shufflenetv2_100_nano")
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        expected = model(x)
        rows = DetectorWithNMS(model, (128, 96)).eval()(x)
    got = rows_to_detections(rows, 2, model.post.detections_per_img)
    for e, g in zip(expected, got):
        assert e["scores"].numel() > 10
        torch.testing.assert_close(g["scores"], e["scores"])
        torch.testing.assert_close(g["boxes"], e["boxes"])
        torch.testing.assert_close(g["labels"], e["labels"])


def test_export_is_verified_in_onnxruntime_and_opencv(tmp_path) -> None:
    nms = True  # the raw graph is exported and checked too
    model = _model("shufflenetv2_100_nano")
    result = export_model("shufflenetv2_100_nano", "onnx", tmp_path, model=model, input_size=(128, 128),
                          exporter="legacy", nms=nms, num_images=4, runtimes=("onnxruntime", "opencv"))
    assert result.passed
    targets = {c.target for c in result.checks}
    assert {"onnxruntime:boxes", "onnxruntime:scores", "opencv:boxes", "opencv:scores"} <= targets
    assert ("onnxruntime:nms" in targets) == nms
    if nms:
        assert (tmp_path / "shufflenetv2_100_nano_nms.onnx").is_file()
        found = [c for c in result.checks if c.target == "onnxruntime:nms"]
        assert all(c.passed and not c.message.startswith("0 ") for c in found), [c.message for c in found]
        import onnx

        ops = {n.op_type for n in onnx.load(str(tmp_path / "shufflenetv2_100_nano_nms.onnx")).graph.node}
        assert "NonMaxSuppression" in ops


def test_priors_are_constants_of_the_exported_size() -> None:
    model = _model("ssdlite320_mobilenetv3_large")
    module = DetectorExport(model, (160, 160)).eval()
    with torch.no_grad():
        boxes, scores = module(torch.randn(1, 3, 160, 160))
    assert boxes.shape[1] == scores.shape[1] == model._export_priors.shape[0]


@pytest.mark.export
@pytest.mark.parametrize("name", lv.list_models(task="detection"))
def test_every_detector_exports_with_nms(tmp_path, name: str) -> None:
    model = _model(name)
    result = export_model(name, "onnx", tmp_path, model=model, nms=True, num_images=4)
    assert result.passed, result.summary()
