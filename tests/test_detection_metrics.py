"""COCO detection metrics: parity with pycocotools run on its own JSON files, perfect predictions, distributed
merging, edge cases, the report's files, and the box drawings."""

from __future__ import annotations

import csv
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from litevision.engine.detection_metrics import DetectionEvaluator
from litevision.engine.draw import denormalize, detection_grid, draw_detections
from litevision.errors import UserError
from litevision.utils.optional import MissingDependencyError, available

needs_coco = pytest.mark.skipif(not available("pycocotools"), reason="needs pycocotools (litevision[detection])")

INPUT = (64, 96)  # (H, W) the model sees
NAMES = ["cat", "dog", "car", "kite"]
CATEGORY_IDS = [7, 1, 3, 10]  # unsorted on purpose: pycocotools orders its categories by id
STATS = ["map", "map50", "map75", "map_small", "map_medium", "map_large",
         "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"]  # the order of COCOeval.stats

Sample = tuple[dict[str, torch.Tensor], dict[str, Any]]


def _target(image_id: int, boxes: Any, labels: Any, orig_size: tuple[int, int], crowd: Any = None) -> dict[str, Any]:
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    return {"boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": labels,
            "iscrowd": torch.zeros(len(labels), dtype=torch.uint8) if crowd is None
            else torch.as_tensor(crowd, dtype=torch.uint8), "image_id": image_id, "orig_size": torch.tensor(orig_size)}


def _random_set(seed: int = 0, num_images: int = 30) -> list[Sample]:
    """Random boxes in input pixels on originals of random (non-square) sizes; predictions are noisy copies of
    most true boxes (sometimes with the wrong class) plus false positives. "kite" has no ground truth."""
    rng = np.random.default_rng(seed)
    in_h, in_w = INPUT
    samples = []
    for i in range(num_images):
        orig = (int(rng.integers(120, 480)), int(rng.integers(150, 640)))
        n = int(rng.integers(0, 7))
        labels = rng.integers(0, 3, n)
        x1, y1 = rng.uniform(0, in_w - 4, n), rng.uniform(0, in_h - 4, n)
        gt = np.stack([x1, y1, x1 + rng.uniform(2, in_w - x1), y1 + rng.uniform(2, in_h - y1)], 1)
        boxes, pred_labels = [], []
        for box, label in zip(gt, labels):
            if rng.random() < 0.75:
                size = np.tile(box[2:] - box[:2], 2)
                boxes.append(box + rng.normal(0, 0.08, 4) * size)
                pred_labels.append(label if rng.random() < 0.85 else rng.integers(0, 4))
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.uniform(0, in_w - 4), rng.uniform(0, in_h - 4)
            boxes.append([x, y, x + rng.uniform(2, in_w - x), y + rng.uniform(2, in_h - y)])
            pred_labels.append(rng.integers(0, 4))
        pred = np.clip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), 0, [in_w, in_h, in_w, in_h])
        pred[:, [0, 2]], pred[:, [1, 3]] = np.sort(pred[:, [0, 2]], 1), np.sort(pred[:, [1, 3]], 1)
        output = {"boxes": torch.tensor(pred, dtype=torch.float32),
                  "scores": torch.tensor(rng.random(len(pred)), dtype=torch.float32),
                  "labels": torch.tensor(np.asarray(pred_labels, dtype=np.int64))}
        samples.append((output, _target(100 + 3 * i, gt, labels, orig, rng.random(n) < 0.1)))
    order = rng.permutation(len(samples))  # the evaluator must not depend on the order images arrive in
    return [samples[i] for i in order]


def _evaluator(samples: list[Sample], batch: int = 4, **kwargs: Any) -> DetectionEvaluator:
    ev = DetectionEvaluator(NAMES, INPUT, category_ids=CATEGORY_IDS, **kwargs)
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        ev.update([s[0] for s in chunk], [s[1] for s in chunk])
    return ev


def _pycocotools_directly(samples: list[Sample], tmp_path: Path) -> Any:
    """The standard route: COCO GT and results JSON files, COCO(), loadRes(), evaluate/accumulate/summarize."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for output, target in sorted(samples, key=lambda s: s[1]["image_id"]):
        h, w = target["orig_size"].tolist()
        scale = np.array([w / INPUT[1], h / INPUT[0], w / INPUT[1], h / INPUT[0]])
        images.append({"id": target["image_id"], "height": h, "width": w})
        for (x1, y1, x2, y2), label, crowd in zip((target["boxes"].double().numpy() * scale).tolist(),
                                                  target["labels"].tolist(), target["iscrowd"].tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": target["image_id"],
                                "category_id": CATEGORY_IDS[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": crowd})
        for (x1, y1, x2, y2), score, label in zip((output["boxes"].double().numpy() * scale).tolist(),
                                                  output["scores"].tolist(), output["labels"].tolist()):
            results.append({"image_id": target["image_id"], "category_id": CATEGORY_IDS[label],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    gt_file, res_file = tmp_path / "gt.json", tmp_path / "results.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": annotations,
                                   "categories": [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, NAMES)]}))
    res_file.write_text(json.dumps(results))
    coco_gt = COCO(str(gt_file))
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(str(res_file)), "bbox")
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval


def _undefined_or_mean(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


@needs_coco
def test_matches_pycocotools_on_its_own_json_files(tmp_path: Path) -> None:
    samples = _random_set()
    report = _evaluator(samples).compute()
    ref = _pycocotools_directly(samples, tmp_path)
    ours = report.metrics()
    assert list(ours) == STATS
    for name, value in zip(STATS, ref.stats):
        assert (ours[name] is None) if value == -1 else ours[name] / 100 == pytest.approx(value, abs=1e-9), name
    assert 5 < ours["map"] < 95 and all(ours[k] is not None for k in STATS)  # a set that tests something
    precision = ref.eval["precision"]  # (IoU, recall, category sorted by id, area, max dets)
    for label, c in enumerate(report.per_class):
        k = sorted(CATEGORY_IDS).index(CATEGORY_IDS[label])
        for ours_ap, ref_ap in ((c.ap, _undefined_or_mean(precision[:, :, k, 0, -1])),
                                (c.ap50, _undefined_or_mean(precision[0, :, k, 0, -1])),
                                (c.ap75, _undefined_or_mean(precision[5, :, k, 0, -1]))):
            assert (ours_ap is None) if ref_ap is None else ours_ap / 100 == pytest.approx(ref_ap, abs=1e-9), c.name
        if c.precision50 is not None:
            np.testing.assert_allclose(c.precision50, precision[0, :, k, 0, -1], rtol=0, atol=1e-12)
    kite = report.per_class[3]
    assert kite.ap is None and kite.precision50 is None and kite.num_gt == 0 and kite.num_dets > 0
    assert report.num_gt == sum(int((t["iscrowd"] == 0).sum()) for _, t in samples)


@needs_coco
def test_ground_truth_as_predictions_is_perfect() -> None:
    targets = [
        _target(1, [[2, 3, 40, 30], [50, 10, 90, 60], [10, 35, 30, 60]], [0, 0, 1], (300, 400)),
        _target(2, [[0, 0, 20, 20], [40, 30, 95, 63]], [2, 2], (480, 640), crowd=[0, 1]),  # a crowd region
        _target(3, [], [], (100, 200)),  # an image without objects
    ]
    outputs = [{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"]))} for t in targets]
    ev = DetectionEvaluator(NAMES, INPUT)
    ev.update(outputs, targets)
    report = ev.compute()
    m = report.metrics()
    assert m["map"] == m["map50"] == m["map75"] == m["ar100"] == pytest.approx(100.0)
    assert [c.ap for c in report.per_class] == [pytest.approx(100.0)] * 3 + [None]
    assert [c.num_gt for c in report.per_class] == [2, 1, 1, 0]  # the crowd region is not an object to find
    assert "no ground truth (AP undefined): kite" in report.summary()


@needs_coco
def test_merged_ranks_equal_one_process() -> None:
    samples = _random_set(seed=1)
    single = _evaluator(samples).compute(meta={"split": "test"}).to_dict()
    ranks = [_evaluator(samples[rank::2], batch=3) for rank in range(2)]
    merged = DetectionEvaluator(NAMES, INPUT, category_ids=CATEGORY_IDS)
    merged.merge([pickle.loads(pickle.dumps(r.state())) for r in ranks])  # as gathered across processes
    assert merged.compute(meta={"split": "test"}).to_dict() == single
    with pytest.raises(UserError, match="appears twice"):
        merged.merge([ranks[0].state(), ranks[0].state()])


@needs_coco
def test_no_detections_and_classes_without_ground_truth() -> None:
    samples = _random_set(seed=2, num_images=6)
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    report = _evaluator([(empty, t) for _, t in samples]).compute()
    assert report.metrics()["map"] == 0 and report.metrics()["map50"] == 0 and report.num_dets == 0
    aps = [c.ap for c in report.per_class]
    assert aps == [0.0 if c.num_gt else None for c in report.per_class] and aps.count(0.0) >= 2
    assert aps[3] is None  # kite: undefined, not 0
    assert report.to_dict()["per_class"][3]["ap"] is None

    ev = DetectionEvaluator(NAMES, INPUT)  # no object anywhere: every metric undefined
    ev.update([empty], [_target(5, [], [], (50, 60))])
    nothing = ev.compute()
    assert set(nothing.metrics().values()) == {None}
    assert "mAP@[.5:.95] -%" in nothing.summary()

    with pytest.raises(UserError, match="empty"):
        DetectionEvaluator(NAMES, INPUT).compute()
    with pytest.raises(UserError, match="outside 0..3"):
        DetectionEvaluator(NAMES, INPUT).update([dict(empty, labels=torch.tensor([4]), boxes=torch.ones(1, 4),
                                                      scores=torch.ones(1))], [_target(1, [], [], (9, 9))])
    assert list(_evaluator(samples, max_dets=20).compute().metrics())[8] == "ar20"


def test_missing_pycocotools_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    ev = DetectionEvaluator(NAMES, INPUT)
    ev.update([{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}],
              [_target(1, [[1, 1, 5, 5]], [0], (10, 10))])
    with pytest.raises(MissingDependencyError, match=r"litevision\[detection\]"):
        ev.compute()


@needs_coco
def test_report_files_round_trip(tmp_path: Path) -> None:
    report = _evaluator(_random_set()).compute(meta={"model": "ssd", "input_size": (3, 64, 96)}, skipped=["x.jpg"])
    paths = report.save(tmp_path, plots=available("matplotlib"))
    data = json.loads(paths["json"].read_text())
    assert data == report.to_dict() and data["meta"]["input_size"] == [3, 64, 96]
    assert len(data["recall_points"]) == 101 and data["recall_points"][0] == 0 and data["recall_points"][-1] == 1
    curves = [c["precision50"] for c in data["per_class"]]
    assert [len(c) for c in curves[:3]] == [101] * 3 and curves[3] is None
    rows = list(csv.DictReader(paths["per_class"].open()))
    assert [r["class"] for r in rows] == NAMES and rows[3]["ap"] == "" and float(rows[0]["ap50"]) > 0
    if available("matplotlib"):
        with Image.open(paths["pr_curves"]) as png:
            assert png.format == "PNG"
    assert "pr_curves" not in report.save(tmp_path / "tables", plots=False)
    summary = report.summary()
    assert "mAP@[.5:.95]" in summary and "1 unreadable skipped" in summary and "classes (AP)" in summary


def test_draw_detections_marks_the_boxes() -> None:
    grey = (128, 128, 128)
    image = Image.new("RGB", (96, 64), grey)
    drawn = draw_detections(image, torch.tensor([[20.0, 20.0, 60.0, 50.0]]), torch.tensor([1]), torch.tensor([0.9]),
                            NAMES, truth={"boxes": torch.tensor([[5.0, 5.0, 90.0, 60.0]]), "labels": torch.tensor([0])})
    pixels = np.asarray(drawn)
    assert drawn.size == image.size and image.getpixel((20, 35)) == grey  # a copy: the input is untouched
    assert (pixels[35, 20] != grey).any() and (pixels[35, 59] != grey).any()  # the left and right borders
    assert (pixels[35, 40] == grey).all()  # inside the box
    bottom = (pixels[59:62, 5:91] != grey).any(axis=(0, 2))
    assert bottom.any() and not bottom.all()  # the true box is dashed
    faint = draw_detections(image, [[20, 20, 60, 50]], [1], [0.1], NAMES, min_score=0.5)
    assert (np.asarray(faint) == grey).all()


def test_detection_grid_and_denormalize(tmp_path: Path) -> None:
    images = [Image.new("RGB", (40, 30), (255, 255, 255)) for _ in range(5)]
    preds = [{"boxes": torch.tensor([[5.0, 8.0, 30.0, 25.0]]), "labels": torch.tensor([i % 4]),
              "scores": torch.tensor([0.8])} for i in range(5)]
    truths = [{"boxes": torch.tensor([[4.0, 6.0, 32.0, 26.0]]), "labels": torch.tensor([i % 4])} for i in range(5)]
    path = detection_grid(images, preds, truths, NAMES, path=tmp_path / "grid" / "detections.png", columns=2)
    with Image.open(path) as grid:
        assert grid.format == "PNG" and grid.size == (2 * 40 + 3 * 4, 3 * 30 + 4 * 4)
        assert np.asarray(grid.convert("RGB"))[4 + 30 + 4 + 15, 4 + 5].tolist() != [255, 255, 255]  # image 3's box

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pixels = torch.randint(0, 256, (3, 8, 10), dtype=torch.uint8)
    x = (pixels / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    rgb = denormalize(x, mean, std)
    assert rgb.mode == "RGB" and rgb.size == (10, 8)
    assert np.array_equal(np.asarray(rgb), pixels.permute(1, 2, 0).numpy())
    assert denormalize(torch.zeros(1, 8, 10), (0.5,), (0.5,)).mode == "L"
