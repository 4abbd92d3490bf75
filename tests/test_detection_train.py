"""Detection through the one trainer: a run folder with COCO metrics and pictures, eval / predict / export from
it, and exact resume after SIGKILL with the detection augmentations and EMA on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from helpers.resume import kill_resume_and_reference
from litevision.cli.main import main as cli_main
from litevision.engine import load_config, train

SHAPES = "data.options={size: 64, train: 32, val: 8, test: 12}"


def tiny(tmp_path: Path, name: str, *extra: str) -> list[str]:
    """A seconds-long detection run: the shapes set at 64 px, the nano detector on ShuffleNetV2 0.5x."""
    return ["model.name=shufflenetv2_100_nano", "model.kwargs={backbone: shufflenetv2_050}", "data.name=shapes",
            SHAPES, "data.input_size=64", "data.batch_size=8", "sched.epochs=2", "run.threads=1", "run.log_every=1",
            f"run.output={tmp_path}", f"run.name={name}", "run.progress=false", *extra]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("det")
    result = train(load_config("detection/shapes_quick", tiny(tmp, "run", "ema.enabled=true")))
    return result.run_dir


def test_run_folder_has_coco_metrics_and_pictures(run_dir: Path) -> None:
    for name in ("best.safetensors", "last.safetensors", "results.json", "eval/metrics.json", "eval/per_class.csv",
                 "eval/pr_curves.png", "eval/detections.png"):
        assert (run_dir / name).is_file(), name
    results = json.loads((run_dir / "results.json").read_text())
    assert results["task"] == "detection" and results["updates"] == 8
    assert 0 <= results["test_map"] <= 100 and "test_map50" in results
    assert "val_map" in (run_dir / "log.csv").read_text().splitlines()[0] or "ema_val_map" in (
        run_dir / "log.csv").read_text().splitlines()[0]


def test_eval_predict_and_export_from_the_run(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert cli_main(["eval", str(run_dir), "--output", str(tmp_path / "eval"), "--json"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["stats"]) >= {"map", "map50", "map75", "map_small", "map_medium", "map_large"}
    image = tmp_path / "a.png"
    Image.new("RGB", (100, 80), (30, 90, 160)).save(image)
    assert cli_main(["predict", str(run_dir), str(image), "--output", str(tmp_path / "pred"),
                     "--score-thresh", "0"]) == 0
    rows = json.loads((tmp_path / "pred" / "detections.json").read_text())
    assert rows and {"image_id", "category_id", "bbox", "score"} <= set(rows[0])
    assert all(0 <= r["bbox"][0] <= 100 and 0 <= r["bbox"][1] <= 80 for r in rows)  # original image pixels
    assert Image.open(tmp_path / "pred" / "a.png").size == (100, 80)
    assert cli_main(["predict", str(run_dir), str(tmp_path / "missing.png"), "--output", str(tmp_path / "p2")]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert cli_main(["export", str(run_dir), "--format", "onnx", "--nms", "--exporter", "legacy",
                     "--output", str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "shufflenetv2_100_nano_nms.onnx").is_file()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "litevision.cli.main", "train", "detection/shapes_quick", *args]


def test_resume_after_sigkill_is_bitwise_identical(tmp_path: Path) -> None:
    sets = tiny(tmp_path, "x", "sched.epochs=3", "run.deterministic=true", "run.checkpoint_every=2",
                "aug.crop=iou", "aug.zoom_out=0.5", "aug.photometric=0.5", "aug.hflip=0.5", "ema.enabled=true",
                "ema.decay=0.9")
    args = [a for s in sets if not s.startswith("run.name=") for a in ("--set", s)]
    kill_resume_and_reference(tmp_path, _cli(*args))
    a, b = load_file(tmp_path / "reference" / "last.safetensors"), load_file(tmp_path / "killed" / "last.safetensors")
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert a.keys() == b.keys() and not different, different[:5]


def test_backbone_starts_from_a_trained_classifier(tmp_path: Path) -> None:
    """model.backbone_checkpoint: a grey Fashion-MNIST classifier run starts the RGB detector's backbone (stem
    kernels repeated over the channels, / 3); the head and the detector's own layers are left alone."""
    classifier = train(load_config("quick", [
        "model.name=shufflenetv2_050", "data.batch_size=16", "run.max_steps=2", "data.val_split=none",
        "run.threads=1", f"run.output={tmp_path}", "run.name=cls", "run.progress=false"]))
    cls_state = load_file(classifier.run_dir / "last.safetensors")
    det = train(load_config("detection/shapes_quick", tiny(
        tmp_path, "det", f"model.backbone_checkpoint={classifier.run_dir}", "run.max_steps=1", "optim.lr=1e-12",
        "optim.weight_decay=0", "sched.warmup_epochs=0", "sched.min_lr=0")))
    det_state = load_file(det.run_dir / "last.safetensors")
    backbone = {k.removeprefix("backbone.body."): v for k, v in det_state.items() if k.startswith("backbone.body.")}
    reshaped = [k for k in backbone if backbone[k].shape != cls_state[k].shape]
    assert len(reshaped) == 1, reshaped  # the stem only: 1 input channel -> 3
    stem = reshaped[0]
    assert cls_state[stem].shape[1] == 1 and backbone[stem].shape[1] == 3
    torch.testing.assert_close(backbone[stem], cls_state[stem].repeat(1, 3, 1, 1) / 3, atol=1e-6, rtol=1e-4)
    weights = [k for k in backbone if k.endswith(".weight") and backbone[k].ndim == 4 and k != stem]
    assert len(weights) > 10
    for key in weights:
        torch.testing.assert_close(backbone[key], cls_state[key], atol=1e-6, rtol=1e-4)


def test_backbone_checkpoint_mistakes_are_named(tmp_path: Path, capsys) -> None:
    from litevision.models import create_model

    other = train(load_config("quick", [
        "model.name=mobilenetv2_035", "data.batch_size=16", "run.max_steps=1", "data.val_split=none",
        "run.threads=1", f"run.output={tmp_path}", "run.name=mnv2", "run.progress=false"]))
    detector = create_model("shufflenetv2_100_nano", num_classes=3, backbone="shufflenetv2_050")
    with pytest.raises(ValueError, match="mobilenetv2_035.*backbone is the classifier shufflenetv2_050"):
        detector.load_backbone(other.run_dir)
    args = [a for s in tiny(tmp_path, "bad", f"model.backbone_checkpoint={other.run_dir}")
            for a in ("--set", s)]
    assert cli_main(["train", "detection/shapes_quick", *args]) == 2
    assert "shufflenetv2_050" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    args = ["--set", f"model.backbone_checkpoint={other.run_dir}", "--set", "run.max_steps=1", "--set",
            f"run.output={tmp_path}", "--set", "run.name=cls_bad"]
    assert cli_main(["train", "quick", *args]) == 2
    assert "no separate backbone" in capsys.readouterr().err


def test_backbone_checkpoint_built_otherwise_says_how(tmp_path: Path) -> None:
    """SSDLite builds MobileNetV3 with the reduced tail: a classifier trained without it is refused with the
    constructor argument that differs and how to train one that fits."""
    from litevision.models import create_model

    plain = train(load_config("quick", [
        "model.name=mobilenetv3_large_100", "data.batch_size=8", "run.max_steps=1", "data.val_split=none",
        "run.threads=1", f"run.output={tmp_path}", "run.name=mnv3", "run.progress=false"]))
    detector = create_model("ssdlite320_mobilenetv3_large", num_classes=3)
    with pytest.raises(ValueError, match=r"of another shape.*'reduced_tail': True.*'reduced_tail': 'its default'.*"
                                         r"--set model.kwargs.reduced_tail=true"):
        detector.load_backbone(plain.run_dir)
