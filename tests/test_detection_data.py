"""Detection data: COCO / VOC / YOLO loaders on tiny files, box-aware transforms, the generated scene datasets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from litevision.data import (
    AugmentConfig,
    build_dataset,
    build_detection_transform,
    detection_collate,
    detection_eval_dataset,
    detection_train_dataset,
    load_bundle,
    make_target,
)
from litevision.data._image import BadImageError, BadSample
from litevision.data.fashion_mnist import CLASS_NAMES
from litevision.data.loader import make_loader
from litevision.data.transforms import build_train_transform
from litevision.errors import UserError
from litevision.models import DataConfig

W, H = 32, 24  # fixture images: 32 wide, 24 high
CONFIG = DataConfig(input_size=(3, 48, 64), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))  # the input: 2x the images


def _image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), colour).save(path)


def _target(boxes: list, labels: list, iscrowd: list | None = None) -> dict:
    return make_target(boxes, labels, iscrowd, image_id=0)


# ------------------------------------------------------------------------------------------------------------ fixtures

def _coco(root: Path, extra_annotations: tuple[dict, ...] = ()) -> None:
    for name in ("train/a.jpg", "train/b.png", "val/c.jpg"):
        _image(root / name)
    cats = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]  # labels follow the ids: cat (3) = 0, dog (7) = 1
    train = {"images": [{"id": 10, "file_name": "a.jpg", "width": W, "height": H},
                        {"id": 11, "file_name": "b.png", "width": W, "height": H}],
             "annotations": [{"id": 1, "image_id": 10, "category_id": 7, "bbox": [2, 3, 10, 8], "iscrowd": 0},
                             {"id": 2, "image_id": 10, "category_id": 3, "bbox": [20, 10, 20, 20], "iscrowd": 1},
                             {"id": 3, "image_id": 11, "category_id": 3, "bbox": [5, 5, 0, 4]},  # empty: dropped
                             *extra_annotations],
             "categories": cats}
    val = {"images": [{"id": 5, "file_name": "c.jpg", "width": W, "height": H}],
           "annotations": [{"id": 9, "image_id": 5, "category_id": 3, "bbox": [1, 1, 4, 4]}], "categories": cats}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train.json").write_text(json.dumps(train))
    (root / "annotations" / "instances_val.json").write_text(json.dumps(val))


def _voc_xml(objects: list[tuple[str, tuple, int]]) -> str:
    body = "".join(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>"
                   + "".join(f"<{tag}>{v}</{tag}>" for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
                   + "</bndbox></object>" for name, box, difficult in objects)
    return f"<annotation><size><width>{W}</width><height>{H}</height></size>{body}</annotation>"


def _voc(root: Path) -> None:
    xmls = {"000001": [("dog", (1, 1, 10, 12), 0), ("cat", (5, 6, 32, 24), 1)], "000002": [("cat", (3, 3, 8, 8), 0)],
            "000003": [("dog", (2, 2, 30, 20), 0)]}
    (root / "Annotations").mkdir(parents=True)
    for image_id, objects in xmls.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(objects))
        _image(root / "JPEGImages" / f"{image_id}.jpg")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("000003\n")


def _yolo(root: Path, names: str = "names: {0: cat, 1: dog, 2: bird}\n") -> None:
    for name in ("images/train/a.png", "images/train/b.png", "images/val/c.png"):
        _image(root / name)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n\n2 0.25 0.25 0.5 0.5\n")  # b.png: no .txt
    (root / "labels" / "val" / "c.txt").write_text("1 0.5 0.5 1.0 1.0\n")
    if names:
        (root / "data.yaml").write_text(names)


def _boxes(target: dict) -> list[list[float]]:
    return target["boxes"].tolist()


# ------------------------------------------------------------------------------------------------------------- loaders

def test_coco_boxes_labels_iscrowd_and_category_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _coco(tmp_path)
    with caplog.at_level(logging.WARNING):
        b = build_dataset("coco_detection", root=str(tmp_path))
    assert (b.task, b.num_classes, b.class_names, b.extra["category_ids"]) == ("detection", 2, ["cat", "dog"], [3, 7])
    assert (len(b.train), len(b.test), b.val) == (2, 1, None)  # no test file: val is the test split
    image, target = b.train[0]
    assert image.mode == "RGB" and image.size == (W, H) and target["image_id"] == 10
    assert _boxes(target) == [[2, 3, 12, 11], [20, 10, 32, 24]]  # the second clipped to the image
    assert target["labels"].tolist() == [1, 0] and target["iscrowd"].tolist() == [0, 1]
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    assert target["iscrowd"].dtype == torch.uint8
    assert b.train[1][1]["boxes"].shape == (0, 4)  # its only box is empty: dropped
    assert _boxes(b.test[0][1]) == [[1, 1, 5, 5]] and b.test[0][1]["image_id"] == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "1 boxes reaching outside" in warnings[0] and "1 empty boxes" in warnings[0]
    assert "annotation id 2" in warnings[0] and "annotation id 3" in warnings[0]


@pytest.mark.parametrize(("annotation", "message"), [
    ({"id": 4, "image_id": 11, "category_id": 3, "bbox": [1, 2, 3]}, "bbox must be 4 finite numbers"),
    ({"id": 4, "image_id": 11, "category_id": 99, "bbox": [1, 2, 3, 4]}, "category_id 99 is not one of"),
    ({"id": 4, "image_id": 12, "category_id": 3, "bbox": [1, 2, 3, 4]}, "image_id 12 is not in 'images'"),
])
def test_coco_bad_annotation_named_by_file_and_id_or_skipped(tmp_path: Path, annotation: dict, message: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    _coco(tmp_path, (annotation, {"id": 5, "image_id": 11, "category_id": 7, "bbox": [1, 1, 6, 6]}))
    with pytest.raises(UserError, match=f"annotations/instances_train.json annotation id 4: {message}.*skip_bad"):
        build_dataset("coco_detection", root=str(tmp_path))
    with caplog.at_level(logging.WARNING):
        b = build_dataset("coco_detection", root=str(tmp_path), skip_bad=True)
    [skipped] = b.extra["skipped"]
    assert skipped.path == "annotations/instances_train.json" and skipped.error.startswith("annotation id 4: ")
    assert b.train[1][1]["labels"].tolist() == [1]  # the good annotation of that image is kept
    assert any("left out 1 bad annotations" in r.getMessage() for r in caplog.records)


def test_coco_single_json_needs_a_test_split(tmp_path: Path) -> None:
    _coco(tmp_path)
    (tmp_path / "annotations" / "instances_val.json").rename(tmp_path / "val.json")
    with pytest.raises(UserError, match="only a training split.*test_ann_file="):
        build_dataset("coco_detection", root=str(tmp_path))
    b = build_dataset("coco_detection", root=str(tmp_path), ann_file="annotations/instances_train.json",
                      images="train", test_ann_file="val.json", test_images="val")
    assert (len(b.train), len(b.test)) == (2, 1) and b.extra["splits"]["test"] == "val.json"
    held = build_dataset("coco_detection", root=str(tmp_path), test_fraction=0.5)
    assert (len(held.train), len(held.test)) == (1, 1)
    assert {held.train[0][1]["image_id"], held.test[0][1]["image_id"]} == {10, 11}


def test_voc_boxes_difficult_and_class_names(tmp_path: Path) -> None:
    _voc(tmp_path)
    b = build_dataset("voc_detection", root=str(tmp_path))
    assert b.class_names == ["cat", "dog"] and (len(b.train), len(b.test)) == (2, 1)
    target = b.train[0][1]
    # VOC's 1-based inclusive pixel boxes become 0-based xyxy: (1, 1, 10, 12) covers pixels 0..9 x 0..11
    assert _boxes(target) == [[0, 0, 10, 12], [4, 5, 32, 24]]
    assert target["labels"].tolist() == [1, 0] and target["iscrowd"].tolist() == [0, 1]  # difficult -> iscrowd
    assert b.extra["splits"] == {"train": "ImageSets/Main/train.txt", "test": "ImageSets/Main/val.txt"}
    named = build_dataset("voc_detection", root=str(tmp_path), class_names=["dog", "cat", "bird"])
    assert named.train[0][1]["labels"].tolist() == [0, 1]


def test_voc_missing_xml_and_bad_object_are_named(tmp_path: Path) -> None:
    _voc(tmp_path)
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n000004\n")
    (tmp_path / "Annotations" / "000002.xml").write_text(
        _voc_xml([("cat", (3, 3, 8, 8), 0)]).replace("</annotation>", "<object><name>cat</name><bndbox><xmin>1</xmin>"
                                                     "<ymin>1</ymin><ymax>5</ymax></bndbox></object></annotation>"))
    with pytest.raises(UserError) as error:
        build_dataset("voc_detection", root=str(tmp_path))
    assert "2 bad annotations" in str(error.value)
    assert "Annotations/000004.xml: annotation file missing" in str(error.value)
    assert "Annotations/000002.xml object 2: <bndbox> needs numbers xmin, ymin, xmax, ymax" in str(error.value)
    b = build_dataset("voc_detection", root=str(tmp_path), skip_bad=True)
    assert sorted(s.path for s in b.extra["skipped"]) == ["Annotations/000002.xml", "Annotations/000004.xml"]
    assert len(b.train) == 2 and b.train[1][1]["labels"].tolist() == [0]  # 000002 keeps its good object


def test_yolo_boxes_missing_txt_and_class_names(tmp_path: Path) -> None:
    _yolo(tmp_path)
    b = build_dataset("yolo_detection", root=str(tmp_path))
    assert b.class_names == ["cat", "dog", "bird"] and (len(b.train), len(b.test)) == (2, 1)
    a, no_txt = b.train[0][1], b.train[1][1]
    assert _boxes(a) == [[12, 6, 20, 18], [0, 0, 16, 12]] and a["labels"].tolist() == [0, 2]
    assert a["iscrowd"].tolist() == [0, 0] and [a["image_id"], no_txt["image_id"]] == [0, 1]
    assert no_txt["boxes"].shape == (0, 4) and no_txt["labels"].shape == (0,)  # no .txt: no objects
    assert _boxes(b.test[0][1]) == [[0, 0, 32, 24]]
    (tmp_path / "data.yaml").unlink()
    (tmp_path / "classes.txt").write_text("cat\ndog\nbird\n")
    assert build_dataset("yolo_detection", root=str(tmp_path)).class_names == ["cat", "dog", "bird"]
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(UserError, match="no class names: looked for data.yaml"):
        build_dataset("yolo_detection", root=str(tmp_path))


@pytest.mark.parametrize(("line", "message"), [
    ("1 0.5 0.5 0.2", r"5 values expected \(class cx cy w h\), got 4"),
    ("7 0.5 0.5 0.2 0.2", r"class 7 is not in 0\.\.2"),
    ("1 0.5 nan 0.2 0.2", "cx cy w h must be finite numbers"),
])
def test_yolo_bad_line_named_with_file_and_line_or_skipped(tmp_path: Path, line: str, message: str) -> None:
    _yolo(tmp_path)
    (tmp_path / "labels" / "train" / "a.txt").write_text(f"0 0.5 0.5 0.25 0.5\n{line}\n")
    with pytest.raises(UserError, match=f"labels/train/a.txt line 2: {message}"):
        build_dataset("yolo_detection", root=str(tmp_path))
    b = build_dataset("yolo_detection", root=str(tmp_path), skip_bad=True)
    assert [(s.path, s.error[:7]) for s in b.extra["skipped"]] == [("labels/train/a.txt", "line 2:")]
    assert _boxes(b.train[0][1]) == [[12, 6, 20, 18]]


def test_unreadable_images_are_named_or_skipped(tmp_path: Path) -> None:
    _yolo(tmp_path)
    (tmp_path / "images" / "train" / "b.png").write_bytes(b"not an image")
    with pytest.raises(BadImageError, match="b.png"):
        build_dataset("yolo_detection", root=str(tmp_path))
    b = build_dataset("yolo_detection", root=str(tmp_path), skip_bad=True)
    assert len(b.train) == 1 and [Path(s.path).name for s in b.extra["skipped"]] == ["b.png"]
    truncated = tmp_path / "images" / "train" / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-200])  # the header parses, the pixels do not decode
    sample, target = build_dataset("yolo_detection", root=str(tmp_path), skip_bad=True).train[0]
    assert isinstance(sample, BadSample) and sample.path.endswith("a.png") and target["labels"].tolist() == [0, 2]


def test_only_a_training_split_says_how_to_add_one(tmp_path: Path) -> None:
    _yolo(tmp_path)
    for name in ("images/val/c.png", "labels/val/c.txt"):
        (tmp_path / name).unlink()
    (tmp_path / "images" / "val").rmdir()
    with pytest.raises(UserError, match="only a training split .* images/val/.*test_fraction=0.2"):
        build_dataset("yolo_detection", root=str(tmp_path))
    b = build_dataset("detection_folder", root=str(tmp_path), test_fraction=0.5)
    assert (len(b.train), len(b.test)) == (1, 1)


@pytest.mark.parametrize(("fmt", "make"), [("coco", _coco), ("voc", _voc), ("yolo", _yolo)])
def test_detection_folder_detects_the_format(tmp_path: Path, fmt: str, make) -> None:
    make(tmp_path)
    b = build_dataset("detection_folder", root=str(tmp_path))
    assert b.extra["format"] == fmt and b.task == "detection"
    routed = load_bundle(str(tmp_path))  # a path: a detection folder is recognised, not read as an ImageFolder
    assert routed.extra["format"] == fmt and len(routed.train) == len(b.train)


def test_detection_folder_says_what_it_looked_for(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "cat" / "x.png")
    _image(tmp_path / "test" / "cat" / "y.png")
    with pytest.raises(UserError, match=r"cannot tell the detection format: looked for annotations/instances_.*"
                                        r"Annotations/\*\.xml.*labels/<split>/\*\.txt.*format=coco"):
        build_dataset("detection_folder", root=str(tmp_path))
    assert load_bundle(str(tmp_path)).task == "classification"  # an ImageFolder stays one


def test_yolo_split_folders_layout(tmp_path: Path) -> None:  # Roboflow's export: <split>/images + <split>/labels
    for split in ("train", "valid"):
        _image(tmp_path / split / "images" / "x.jpg")
        (tmp_path / split / "labels").mkdir(parents=True)
        (tmp_path / split / "labels" / "x.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text("names: [a, b]\n")
    b = load_bundle(str(tmp_path))
    assert b.extra["format"] == "yolo" and b.extra["splits"] == {"train": "train/images", "test": "valid/images"}
    assert _boxes(b.test[0][1]) == [[8, 6, 24, 18]] and b.test[0][1]["labels"].tolist() == [1]


# ---------------------------------------------------------------------------------------------------------- transforms

def _halves() -> Image.Image:
    """Left half red, right half blue."""
    pixels = np.zeros((H, W, 3), dtype=np.uint8)
    pixels[:, : W // 2, 0] = 255
    pixels[:, W // 2:, 2] = 255
    return Image.fromarray(pixels)


def test_eval_transform_resizes_boxes_exactly_and_keeps_orig_size() -> None:
    x, target = build_detection_transform(CONFIG, None)(Image.new("RGB", (W, H), (255, 0, 51)),
                                                        _target([[2, 3, 12, 11], [0, 0, 32, 24]], [1, 0], [0, 1]))
    assert x.shape == (3, 48, 64) and x.dtype == torch.float32
    assert torch.allclose(x[:, 10, 10], torch.tensor([2.0, -2.0, -1.2]), atol=1e-5)  # (v / 255 - 0.5) / 0.25
    assert _boxes(target) == [[4, 6, 24, 22], [0, 0, 64, 48]] and target["boxes"].dtype == torch.float32
    assert target["orig_size"].tolist() == [H, W] and target["orig_size"].dtype == torch.int64
    assert target["labels"].tolist() == [1, 0] and target["iscrowd"].tolist() == [0, 1] and target["image_id"] == 0


def test_horizontal_flip_mirrors_image_and_boxes_exactly() -> None:
    flip = build_detection_transform(CONFIG, AugmentConfig(crop="none", hflip=1.0))
    x, target = flip(_halves(), _target([[2, 3, 12, 11]], [1]))
    assert _boxes(target) == [[40, 6, 60, 22]]  # (32 - 12, 3, 32 - 2, 11), then 2x
    assert x[2, 5, 5] > 1.5 and x[0, 5, 5] < -1.5 and x[0, 5, 60] > 1.5  # blue now on the left, red on the right


def test_sanitize_drops_labels_and_iscrowd_with_their_boxes() -> None:
    transform = build_detection_transform(CONFIG, AugmentConfig(crop="none", hflip=0.0))
    _, target = transform(_halves(), _target([[5, 5, 5, 10], [2, 3, 12, 11], [4, 4, 4.2, 9]], [0, 1, 2], [1, 0, 1]))
    assert _boxes(target) == [[4, 6, 24, 22]] and target["labels"].tolist() == [1]
    assert target["iscrowd"].tolist() == [0]


def test_augmentation_options_and_crop_names() -> None:
    aug = AugmentConfig()
    assert (aug.photometric, aug.zoom_out, aug.zoom_out_max) == (0.0, 0.0, 2.0)  # classification unchanged
    with pytest.raises(ValueError, match="'rrc', 'pad' or 'none'"):
        build_train_transform(CONFIG, AugmentConfig(crop="iou"))  # the IoU crop is for detection only
    with pytest.raises(ValueError, match="'iou'.*or 'none', not 'rrc'"):
        build_detection_transform(CONFIG, aug)
    with pytest.raises(ValueError, match="in_chans=3"):
        build_detection_transform(CONFIG.replace(input_size=(1, 48, 64)), None)


def test_training_augmentation_is_seeded_by_seed_epoch_and_index() -> None:
    b = build_dataset("shapes", size=64, train=8, val=0, test=4)
    aug = AugmentConfig(crop="iou", hflip=0.5, photometric=1.0, zoom_out=0.5, zoom_out_max=3.0)
    ds = detection_train_dataset(b, CONFIG, aug, seed=3)
    x, target = ds[(1, 5)]
    torch.manual_seed(123)  # the global RNG state must not matter
    np.random.seed(7)
    again, target_again = ds[(1, 5)]
    assert torch.equal(x, again) and torch.equal(target["boxes"], target_again["boxes"])
    assert not torch.equal(x, ds[(2, 5)][0])
    assert x.shape == (3, 48, 64) and target["orig_size"].tolist() == [64, 64]
    raw_labels = b.train[6][1]["labels"].tolist()
    kept = []
    for epoch in range(8):  # whatever the crop / zoom, boxes stay on the input and keep their own labels
        _, t = ds[(epoch, 6)]
        assert len(t["boxes"]) == len(t["labels"]) == len(t["iscrowd"])
        assert (t["boxes"][:, 2:] > t["boxes"][:, :2]).all() and (t["boxes"] >= 0).all()
        assert (t["boxes"][:, 2] <= 64).all() and (t["boxes"][:, 3] <= 48).all()
        assert set(t["labels"].tolist()) <= set(raw_labels)
        kept.append(len(t["boxes"]))
    assert len(raw_labels) == 4 and min(kept) < 4  # some crops left objects out: sanitizing had work to do


def test_eval_dataset_and_collate_batch_variable_targets() -> None:
    b = build_dataset("shapes", size=64, train=4, val=0, test=5)
    ds = detection_eval_dataset(b, CONFIG)
    images, targets = detection_collate([ds[0], ds[1]])
    assert images.shape == (2, 3, 48, 64) and [t["image_id"] for t in targets] == [0, 1]
    x, y, bad = next(iter(make_loader(ds, batch_size=3, collate_samples=detection_collate)))
    assert x.shape == (3, 3, 48, 64) and len(y) == 3 and bad == []
    assert all(t["boxes"].shape == (len(t["labels"]), 4) for t in y)
    raw_boxes = b.test[2][1]["boxes"]
    assert torch.allclose(y[2]["boxes"], raw_boxes * torch.tensor([1.0, 0.75, 1.0, 0.75]))  # 64x64 -> 64 wide, 48 high


# -------------------------------------------------------------------------------------------------------------- scenes

SMALL = {"size": 96, "train": 6, "val": 4, "test": 4}


def test_fashion_mnist_scenes_are_deterministic_with_ten_classes() -> None:
    a, b = build_dataset("fashion_mnist_scenes", **SMALL), build_dataset("fashion_mnist_scenes", **SMALL)
    assert (a.num_classes, a.class_names, a.task, a.in_chans) == (10, CLASS_NAMES, "detection", 3)
    assert (len(a.train), len(a.val), len(a.test)) == (6, 4, 4)
    for split in ("train", "val", "test"):
        for i in range(len(getattr(a, split))):
            (image, target), (image2, target2) = getattr(a, split)[i], getattr(b, split)[i]
            assert image.mode == "RGB" and image.size == (96, 96)
            assert np.array_equal(np.asarray(image), np.asarray(image2))
            assert torch.equal(target["boxes"], target2["boxes"]) and torch.equal(target["labels"], target2["labels"])
    assert not np.array_equal(np.asarray(a.train[0][0]), np.asarray(a.train[1][0]))
    default = build_dataset("fashion_mnist_scenes")  # generated lazily: building the full split sizes is instant
    assert (len(default.train), len(default.val), len(default.test)) == (3000, 500, 1000)
    assert default.train[2999][0].size == (320, 320) and "mean" in default.extra and "licence" in default.extra


def test_fashion_mnist_scenes_splits_use_disjoint_source_images() -> None:
    b = build_dataset("fashion_mnist_scenes", size=96, train=30, val=30, test=30)
    assert len(b.train.pool) == 5000 and b.train.images.shape == (5000, 28, 28)  # subset-train images
    assert b.val.images is b.test.images and len(b.val.images) == 1000  # subset-test images, split in halves
    assert not set(b.val.pool.tolist()) & set(b.test.pool.tolist()) and len(b.val.pool) == len(b.test.pool) == 500
    for split in (b.train, b.val, b.test):
        used = np.concatenate([split.sources(i) for i in range(len(split))])
        assert len(used) > len(split) and set(used.tolist()) <= set(split.pool.tolist())
        for i in range(len(split)):  # each item's label is its source image's
            assert np.array_equal(split.scene(i).labels, split.labels[split.sources(i)])


@pytest.mark.parametrize(("name", "options"), [("fashion_mnist_scenes", SMALL), ("shapes", {"size": 64, "train": 12})])
def test_scene_boxes_are_inside_and_tight(name: str, options: dict) -> None:
    b = build_dataset(name, **options)
    size = options["size"]
    counts = []
    for i in range(len(b.train)):
        scene = b.train.scene(i)
        counts.append(len(scene.boxes))
        assert len(scene.boxes) == len(scene.labels) == len(scene.masks)
        for box, (top, left, mask) in zip(scene.boxes, scene.masks):
            x1, y1, x2, y2 = (int(v) for v in box)
            assert np.array_equal(box, [x1, y1, x2, y2]) and 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
            canvas = np.zeros((size, size), dtype=bool)
            canvas[top:top + mask.shape[0], left:left + mask.shape[1]] = mask
            assert canvas[y1:y2, x1:x2].sum() == canvas.sum()  # every pixel of the item inside its box...
            assert canvas[y1, x1:x2].any() and canvas[y2 - 1, x1:x2].any()  # ...and on each side of it
            assert canvas[y1:y2, x1].any() and canvas[y1:y2, x2 - 1].any()
    assert min(counts) >= 1 and max(counts) > 1


def test_shapes_has_three_classes_and_split_counts() -> None:
    b = build_dataset("shapes")
    assert (b.num_classes, b.class_names, b.task) == (3, ["circle", "square", "triangle"], "detection")
    assert (len(b.train), len(b.val), len(b.test)) == (256, 64, 64)
    labels = np.concatenate([b.train.scene(i).labels for i in range(40)])
    assert set(labels.tolist()) == {0, 1, 2}
    assert build_dataset("shapes", val=0).val is None
    with pytest.raises(UserError, match="train must be positive"):
        build_dataset("shapes", train=0)
