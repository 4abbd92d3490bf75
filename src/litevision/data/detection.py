"""Object detection data: one dataset interface, COCO / Pascal VOC / YOLO loaders, box-aware transforms.

A raw detection dataset yields ``(image, target)``: ``image`` a ``PIL.Image`` in mode "RGB", ``target`` a dict with
``boxes`` (float32 (M, 4), ``xyxy`` in pixels of that image), ``labels`` (int64 (M,), ``0..K-1``), ``iscrowd``
(uint8 (M,): COCO's ``iscrowd``, VOC's ``difficult``; YOLO has none) and ``image_id`` (int, unique within the split).
An image that cannot be read yields a :class:`BadSample` instead of the image, as the image folders do, so the
loaders name or skip it.

Layouts (``detection_folder`` tells them apart):

* COCO: ``annotations/instances_<split>*.json`` with the images in ``<split>*/`` or ``images/<split>*/``; or one
  JSON inside each ``<split>/`` folder next to its images (Roboflow's export); or any JSON given as ``ann_file``.
* Pascal VOC: ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg``, ``ImageSets/Main/<list>.txt``.
* YOLO: ``images/<split>/`` + ``labels/<split>/`` (or ``<split>/images`` + ``<split>/labels``), one normalized
  ``class cx cy w h`` line per object, a missing ``.txt`` meaning no objects; names in ``data.yaml`` or ``classes.txt``.

Split names ``valid`` / ``validation`` mean ``val``. Without a test split, ``val`` is the test split (what COCO and most
YOLO datasets report on); with neither, ``test_fraction`` holds out part of the training images, else it is an error.

Bad annotations are named by file and line (COCO: JSON file and annotation id; VOC: XML file and object index) in one
:class:`UserError`, or with ``skip_bad=True`` left out (an image whose annotation file is unreadable, with it), logged
once and listed in ``bundle.extra["skipped"]``. Boxes reaching outside their image are clipped to it, boxes empty
after clipping (zero or negative area) dropped, and both counted in one warning.

Transforms are torchvision's ``transforms.v2`` on ``tv_tensors.Image`` + ``tv_tensors.BoundingBoxes``, so boxes follow
every geometric operation without box arithmetic of our own.
"""

from __future__ import annotations

import json
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from litevision.data._image import IMAGE_EXTENSIONS, BadImageError, BadSample, bad_image_message
from litevision.data.registry import DataBundle, register_dataset
from litevision.data.transforms import AugmentConfig, interpolation_mode
from litevision.errors import UserError
from litevision.models import DataConfig

log = logging.getLogger(__name__)

FORMATS = ("coco", "voc", "yolo")
# Split folder / file names as annotation tools write them -> our split names.
_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_LOOKED_FOR = ("annotations/instances_<split>*.json or <split>/*.json (COCO), Annotations/*.xml (Pascal VOC), "
               "labels/<split>/*.txt or <split>/labels/*.txt next to the images (YOLO)")
_SHOWN = 5  # problems named in a message; the rest are counted


@dataclass(frozen=True)
class ImageAnnotation:
    """The objects of one image: ``boxes`` float32 (M, 4) xyxy pixels, ``labels`` int64 (M,), ``iscrowd`` uint8 (M,)."""

    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    image_id: int


def make_target(boxes: Any, labels: Any, iscrowd: Any = None, *, image_id: int) -> dict[str, Any]:
    """The target dict of the contract above from array-likes (``iscrowd`` defaults to all 0)."""
    labels = torch.tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
    crowd = np.zeros(len(labels), dtype=np.uint8) if iscrowd is None else np.asarray(iscrowd, dtype=np.uint8)
    return {"boxes": torch.tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)), "labels": labels,
            "iscrowd": torch.tensor(crowd.reshape(-1)), "image_id": int(image_id)}


class DetectionDataset(Dataset):
    """Annotated image files: ``samples`` is ``[(image path, ImageAnnotation)]`` (the path first, as in the image
    folders, so a failing sample is named by its file)."""

    def __init__(self, samples: Sequence[tuple[str, ImageAnnotation]], class_names: Sequence[str]) -> None:
        self.samples = list(samples)
        self.class_names = list(class_names)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image | BadSample, dict[str, Any]]:
        path, ann = self.samples[index]
        target = make_target(ann.boxes, ann.labels, ann.iscrowd, image_id=ann.image_id)
        try:
            with Image.open(path) as img:
                img.load()
                return img.convert("RGB"), target
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... name the file, never crash a worker
            return BadSample(path, f"{type(e).__name__}: {e}"), target


class _Problems:
    """What went wrong while reading one dataset: bad annotations, unreadable images, clipped and dropped boxes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.annotations: list[BadSample] = []  # path: the annotation file (relative to root); error: where + what
        self.messages: list[str] = []
        self.images: list[BadSample] = []
        self.clipped = 0
        self.dropped = 0
        self.box_names: list[str] = []

    def name(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def bad(self, path: Path, where: str, what: str) -> None:
        """A bad annotation: ``where`` is "line 3", "annotation id 12", "object 2" or "" (the whole file)."""
        name = self.name(path)
        self.annotations.append(BadSample(name, f"{where}: {what}" if where else what))
        self.messages.append(f"{name} {where}: {what}" if where else f"{name}: {what}")

    def image_size(self, path: Path) -> tuple[int, int] | None:
        """(width, height) from the file's header (no pixels decoded), or None when it cannot be opened."""
        try:
            with Image.open(path) as img:
                return img.size
        except Exception as e:
            self.images.append(BadSample(str(path), f"{type(e).__name__}: {e}"))
            return None

    def clip(self, boxes: np.ndarray, width: Any, height: Any, names: Callable[[int], str]) -> np.ndarray:
        """Clip xyxy ``boxes`` (float64 (N, 4), in place) to their image (scalars or one size per box); returns the
        mask of the boxes not empty afterwards. ``names(i)`` names box ``i`` for the warning."""
        n = len(boxes)
        w = np.broadcast_to(np.asarray(width, dtype=np.float64).reshape(-1, 1), (n, 1))
        h = np.broadcast_to(np.asarray(height, dtype=np.float64).reshape(-1, 1), (n, 1))
        before = boxes.copy()
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, w)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        changed = (boxes != before).any(axis=1)
        self.clipped += int((changed & keep).sum())
        self.dropped += int((~keep).sum())
        for i in np.flatnonzero(changed | ~keep)[: max(0, _SHOWN - len(self.box_names))]:
            self.box_names.append(names(int(i)))
        return keep

    def finish(self, what: str, skip_bad: bool) -> list[BadSample]:
        """Warn about clipped / dropped boxes; raise for bad annotations and unreadable images, or with ``skip_bad``
        log them once and return them (the dataset's ``extra["skipped"]``)."""
        if self.clipped or self.dropped:
            log.warning("%s: %d boxes reaching outside their image clipped to it, %d empty boxes (zero or negative "
                        "area after clipping) dropped; first: %s", what, self.clipped, self.dropped,
                        "; ".join(self.box_names))
        if not skip_bad:
            if self.annotations:
                raise UserError(_bad_annotation_message(what, self.messages))
            if self.images:
                raise BadImageError(bad_image_message(self.images))
        if self.annotations or self.images:
            names = self.messages[:_SHOWN] + [f"{b.path} ({b.error})" for b in self.images[:_SHOWN]]
            log.warning("%s: skip_bad: left out %d bad annotations and %d unreadable images: %s", what,
                        len(self.annotations), len(self.images), "; ".join(names[:_SHOWN]))
        return self.annotations + self.images


def _bad_annotation_message(what: str, messages: Sequence[str]) -> str:
    more = f"; and {len(messages) - _SHOWN} more" if len(messages) > _SHOWN else ""
    count = "a bad annotation" if len(messages) == 1 else f"{len(messages)} bad annotations"
    return (f"{what}: {count}: {'; '.join(messages[:_SHOWN])}{more}. Fix the files, or pass skip_bad=True "
            "(data.skip_bad=true, --skip-bad) to leave the bad annotations out; each is named in the log and in the "
            "dataset's extra['skipped'].")


def _root(root: str | os.PathLike[str]) -> Path:
    base = Path(root)
    if not base.is_dir():
        raise UserError(f"detection data folder not found: {base}")
    return base


def _resolve(base: Path, path: str | None, option: str) -> Path | None:
    if path is None:
        return None
    p = Path(path) if Path(path).is_absolute() else base / path
    if not p.exists():
        raise UserError(f"{option}={path!r}: not found (relative paths are taken from root={str(base)!r})")
    return p


def _split_of(name: str) -> str | None:
    """"train2017" -> "train", "valid" / "val2017" -> "val", "test-dev" -> "test"; None when no split is named."""
    name = name.lower()
    for prefix, split in (("trainval", "train"), ("train", "train"), ("validation", "val"), ("valid", "val"),
                          ("val", "val"), ("test", "test")):
        if name.startswith(prefix):
            return split
    return None


def _split_dirs(base: Path) -> list[tuple[str, Path]]:
    """``(split, folder)`` for the folders of ``base`` named train / val / valid / validation / test."""
    return [(_SPLIT_NAMES[d.name.lower()], d) for d in sorted(base.iterdir())
            if d.is_dir() and d.name.lower() in _SPLIT_NAMES]


def _image_files(folder: Path) -> list[Path]:
    exts = tuple(IMAGE_EXTENSIONS)
    return [Path(dirpath) / f for dirpath, _, files in sorted(os.walk(folder, followlinks=True))
            for f in sorted(files) if f.lower().endswith(exts)]


def _hold_out(ds: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    if not 0 < fraction < 1:
        raise UserError(f"test_fraction must be between 0 and 1, not {fraction}")
    order = np.random.default_rng(seed).permutation(len(ds))
    held = int(round(len(ds) * fraction))
    if not 0 < held < len(ds):
        raise UserError(f"test_fraction={fraction} of {len(ds)} training images leaves an empty split")
    return Subset(ds, sorted(order[held:].tolist())), Subset(ds, sorted(order[:held].tolist()))


def _bundle(fmt: str, base: Path, splits: dict[str, DetectionDataset], class_names: Sequence[str],
            problems: _Problems, *, sources: dict[str, str], how_to_test: str, skip_bad: bool, test_fraction: float,
            seed: int, extra: dict[str, Any] | None = None) -> DataBundle:
    what = f"{fmt} detection data {base}"
    skipped = problems.finish(what, skip_bad)
    train, val, test = splits["train"], splits.get("val"), splits.get("test")
    if test is None and val is not None:  # COCO / YOLO datasets report on val
        test, val = val, None
        sources["test"] = sources.pop("val")
    if test is None:
        if test_fraction <= 0:
            raise UserError(f"{base}: only a training split ({len(train)} images) and no val or test split: "
                            f"{how_to_test}, or pass test_fraction=0.2 to hold out 20% of the training images")
        train, test = _hold_out(train, test_fraction, seed)
        sources["test"] = f"{test_fraction:g} of {sources['train']} (seed {seed})"
    elif test_fraction > 0:
        raise UserError(f"{base}: test_fraction is for data without a val or test split; this one has "
                        f"{sources['test']}")
    return DataBundle(
        train=train, test=test, val=val, num_classes=len(class_names), in_chans=3, class_names=list(class_names),
        kind="image", task="detection", description=what,
        extra={"root": str(base), "format": fmt, "splits": sources, "skipped": skipped, **(extra or {})},
    )


def _annotation(boxes: np.ndarray, labels: Sequence[int], iscrowd: Sequence[int], image_id: int) -> ImageAnnotation:
    return ImageAnnotation(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64),
                           np.asarray(iscrowd, dtype=np.uint8), int(image_id))


# ---------------------------------------------------------------------------------------------------------------- COCO

def _find_coco_files(base: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    ann_dir = base / "annotations"
    if ann_dir.is_dir():
        files = sorted(ann_dir.glob("*.json"))
        instances = [f for f in files if f.name.startswith("instances_")]  # not captions_ / person_keypoints_
        for f in instances or files:
            if (split := _split_of(f.stem.removeprefix("instances_"))) is not None:
                found.setdefault(split, []).append(f)
    for split, folder in _split_dirs(base):
        found.setdefault(split, []).extend(sorted(folder.glob("*.json")))
    return {split: files for split, files in found.items() if files}


def _coco_image_dir(base: Path, ann: Path, first_file: str | None) -> Path:
    stem = ann.stem.removeprefix("instances_")
    candidates = dict.fromkeys([base / stem, base / "images" / stem, ann.parent, ann.parent / "images",
                                base / "images", base])
    for folder in candidates:
        if folder.is_dir() and (first_file is None or (folder / first_file).is_file()):
            return folder
    raise UserError(f"{ann}: no image folder holds its first image {first_file!r} (looked in "
                    f"{', '.join(str(c) for c in candidates)}); pass images= (val_images=, test_images=)")


def _load_coco_json(path: Path, name: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{name} line {e.lineno}: not valid JSON ({e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{name}: cannot read ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{name}: not a COCO annotation file (an object with 'images', 'annotations' and "
                        "'categories' lists expected)")
    if not isinstance(data.get("annotations"), list):
        raise UserError(f"{name}: no 'annotations' list (an image-info file without ground truth)")
    return data


def _coco_categories(data: dict[str, Any], name: str) -> list[tuple[int, str]]:
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats:
        raise UserError(f"{name}: no 'categories' list")
    found: dict[int, str] = {}
    for i, c in enumerate(cats):
        if not (isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str)):
            raise UserError(f"{name} category #{i}: an integer 'id' and a 'name' expected, got {c!r}")
        if c["id"] in found:
            raise UserError(f"{name} category #{i}: id {c['id']} used twice")
        found[c["id"]] = c["name"]
    return sorted(found.items())


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _read_coco(base: Path, ann: Path, images_dir: Path | None, categories: dict[int, int] | None,
               problems: _Problems) -> tuple[list[tuple[str, ImageAnnotation]], list[tuple[int, str]]]:
    """The samples of one COCO JSON file and its categories; ``categories`` maps the training file's category ids to
    labels (None: this is the training file, its own categories define them)."""
    name = problems.name(ann)
    data = _load_coco_json(ann, name)
    cats = _coco_categories(data, name)
    label_of = categories if categories is not None else {cid: k for k, (cid, _) in enumerate(cats)}
    entries = [im for im in data["images"] if isinstance(im, dict)]
    first = next((im["file_name"] for im in entries if isinstance(im.get("file_name"), str)), None)
    folder = images_dir or _coco_image_dir(base, ann, first)
    position: dict[int, int] = {}  # COCO image id -> sample
    declared: set[int] = set()
    paths, sizes, ids = [], [], []
    for i, im in enumerate(data["images"]):
        if not (isinstance(im, dict) and isinstance(im.get("id"), int) and isinstance(im.get("file_name"), str)):
            problems.bad(ann, f"image #{i}", f"an integer 'id' and a 'file_name' expected, got {im!r}"[:200])
            continue
        if im["id"] in declared:
            problems.bad(ann, f"image id {im['id']}", "id used twice")
            continue
        declared.add(im["id"])
        if (size := problems.image_size(folder / im["file_name"])) is not None:
            position[im["id"]] = len(paths)
            paths.append(str(folder / im["file_name"]))
            sizes.append(size)
            ids.append(im["id"])
    rows, ann_ids = [], []
    for i, a in enumerate(data["annotations"]):
        aid = a.get("id", f"#{i}") if isinstance(a, dict) else f"#{i}"
        where = f"annotation id {aid}"
        if not isinstance(a, dict):
            problems.bad(ann, where, f"an object expected, got {a!r}"[:200])
            continue
        image_id, cat, bbox, crowd = a.get("image_id"), a.get("category_id"), a.get("bbox"), a.get("iscrowd", 0)
        if not isinstance(image_id, int) or image_id not in declared:
            problems.bad(ann, where, f"image_id {image_id!r} is not in 'images'")
        elif not isinstance(cat, int) or cat not in label_of:
            known = "training categories" if categories is not None else "categories"
            problems.bad(ann, where, f"category_id {cat!r} is not one of the {known} {sorted(label_of)}")
        elif not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            problems.bad(ann, where, f"bbox must be 4 finite numbers [x, y, width, height], got {bbox!r}"[:200])
        elif crowd not in (0, 1):
            problems.bad(ann, where, f"iscrowd must be 0 or 1, got {crowd!r}")
        elif image_id in position:  # else the image is unreadable and already reported
            rows.append((position[image_id], label_of[cat], *bbox, int(crowd)))
            ann_ids.append(aid)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    where_image = table[:, 0].astype(np.int64)
    boxes = table[:, 2:6].copy()
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
    wh = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    keep = problems.clip(boxes, wh[where_image, 0], wh[where_image, 1], lambda k: f"{name} annotation id {ann_ids[k]}")
    where_image, boxes, labels, crowds = where_image[keep], boxes[keep], table[keep, 1], table[keep, 6]
    order = np.argsort(where_image, kind="stable")
    bounds = np.cumsum(np.bincount(where_image, minlength=len(paths)))[:-1]
    per_image = zip(np.split(boxes[order], bounds), np.split(labels[order], bounds), np.split(crowds[order], bounds))
    samples = [(path, _annotation(b, lb, c, image_id)) for path, image_id, (b, lb, c) in zip(paths, ids, per_image)]
    return samples, cats


@register_dataset("coco_detection", "COCO JSON detection: annotations/instances_<split>*.json + image folders")
def coco_detection(
    root: str,
    ann_file: str | None = None,
    images: str | None = None,
    val_ann_file: str | None = None,
    val_images: str | None = None,
    test_ann_file: str | None = None,
    test_images: str | None = None,
    skip_bad: bool = False,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> DataBundle:
    """COCO annotations: ``ann_file`` (training), ``val_ann_file``, ``test_ann_file``, each with its image folder
    (``images``, ``val_images``, ``test_images``; found next to the file when not given). A split whose file is not
    given is searched in ``root``'s layout. Paths are relative to ``root``. Labels are the categories of the training
    file sorted by id; ``extra["category_ids"][label]`` is the original id."""
    base = _root(root)
    given = {"train": (ann_file, images, "ann_file", "images"), "val": (val_ann_file, val_images, "val_ann_file",
             "val_images"), "test": (test_ann_file, test_images, "test_ann_file", "test_images")}
    found = _find_coco_files(base)
    files: dict[str, tuple[Path, Path | None]] = {}
    for split, (ann, folder, ann_option, folder_option) in given.items():
        if ann is None and folder is not None:
            raise UserError(f"{folder_option}={folder!r} needs {ann_option}= (the annotations of those images)")
        if ann is not None:
            files[split] = (_resolve(base, ann, ann_option), _resolve(base, folder, folder_option))
        elif split in found:
            if len(found[split]) > 1:
                names = ", ".join(p.relative_to(base).as_posix() for p in found[split])
                raise UserError(f"{base}: several {split} annotation files ({names}); choose one with {ann_option}=")
            files[split] = (found[split][0], None)
    if "train" not in files:
        raise UserError(f"{base}: no COCO training annotations: looked for annotations/instances_train*.json and "
                        "train/*.json; pass ann_file=<json> (and images=<folder>)")
    problems = _Problems(base)
    samples, cats = _read_coco(base, *files["train"], None, problems)
    label_of = {cid: k for k, (cid, _) in enumerate(cats)}
    class_names = [name for _, name in cats]
    splits = {"train": DetectionDataset(samples, class_names)}
    for split in ("val", "test"):
        if split in files:
            splits[split] = DetectionDataset(_read_coco(base, *files[split], label_of, problems)[0], class_names)
    return _bundle("coco", base, splits, class_names, problems,
                   sources={s: problems.name(ann) for s, (ann, _) in files.items()},
                   how_to_test="pass test_ann_file=<json> (and test_images=<folder>), or add "
                               "annotations/instances_val.json", skip_bad=skip_bad, test_fraction=test_fraction,
                   seed=seed, extra={"category_ids": [cid for cid, _ in cats]})


# ----------------------------------------------------------------------------------------------------------- Pascal VOC

@dataclass
class _VOCImage:
    xml: Path
    image: Path
    objects: list[tuple[int, str, tuple[float, float, float, float], int]]  # (index, class, VOC box, difficult)


def _read_voc_xml(base: Path, image_id: str, problems: _Problems) -> _VOCImage | None:
    xml = base / "Annotations" / f"{image_id}.xml"
    if not xml.is_file():
        problems.bad(xml, "", "annotation file missing")
        return None
    try:
        tree = ET.parse(xml).getroot()
    except ET.ParseError as e:  # the message says line and column
        problems.bad(xml, "", f"not valid XML ({e})")
        return None
    filename = (tree.findtext("filename") or "").strip()
    image = base / "JPEGImages" / (filename or f"{image_id}.jpg")
    if not image.is_file():  # tools that rename files often leave <filename> stale: fall back to the id
        image = next((p for ext in IMAGE_EXTENSIONS if (p := base / "JPEGImages" / f"{image_id}{ext}").is_file()),
                     image)
    objects = []
    for k, obj in enumerate(tree.findall("object"), 1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        coords = [None if box is None else box.findtext(tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        difficult = (obj.findtext("difficult") or "0").strip()
        try:
            values = tuple(float(c) for c in coords)
        except (TypeError, ValueError):  # a tag missing (None) or not a number
            values = ()
        if not name:
            problems.bad(xml, f"object {k}", "no <name>")
        elif len(values) != 4 or not all(math.isfinite(v) for v in values):
            problems.bad(xml, f"object {k}", f"<bndbox> needs numbers xmin, ymin, xmax, ymax, got {coords}")
        elif difficult not in ("0", "1"):
            problems.bad(xml, f"object {k}", f"<difficult> must be 0 or 1, got {difficult!r}")
        else:
            objects.append((k, name, values, int(difficult)))
    return _VOCImage(xml, image, objects)


def _voc_samples(images: list[_VOCImage], class_names: list[str], problems: _Problems
                 ) -> list[tuple[str, ImageAnnotation]]:
    label_of = {name: k for k, name in enumerate(class_names)}
    samples = []
    for item in images:
        if (size := problems.image_size(item.image)) is None:
            continue
        kept = []
        for k, name, values, difficult in item.objects:
            if name in label_of:
                kept.append((k, label_of[name], values, difficult))
            else:
                problems.bad(item.xml, f"object {k}", f"class {name!r} is not a training class {class_names}")
        # VOC boxes are 1-based inclusive pixel indices: xmin=1..xmax=W covers the whole width [0, W).
        boxes = np.asarray([(x1 - 1, y1 - 1, x2, y2) for _, _, (x1, y1, x2, y2), _ in kept], np.float64).reshape(-1, 4)
        names = [f"{problems.name(item.xml)} object {k}" for k, *_ in kept]
        keep = problems.clip(boxes, size[0], size[1], names.__getitem__)
        labels = np.asarray([o[1] for o in kept], dtype=np.int64)[keep]
        difficult = np.asarray([o[3] for o in kept], dtype=np.uint8)[keep]
        samples.append((str(item.image), _annotation(boxes[keep], labels, difficult, len(samples))))
    return samples


def _voc_lists(lists: Path, train: str | None, val: str | None, test: str | None) -> dict[str, str | None]:
    if train is not None or val is not None or test is not None:
        return {s: name for s, name in (("train", train), ("val", val), ("test", test)) if name is not None}
    have = {p.stem for p in lists.glob("*.txt")} if lists.is_dir() else set()
    main = "trainval" if "trainval" in have else "train" if "train" in have else None
    if "test" in have:  # VOC2007: trainval / test
        return {"train": main, "test": "test"}
    if "val" in have and "train" in have:  # VOC2012: train / val (its test set has no annotations)
        return {"train": "train", "val": "val"}
    return {"train": main}  # None: every Annotations/*.xml


def _voc_ids(base: Path, lists: Path, name: str | None) -> list[str]:
    if name is None:
        return sorted(p.stem for p in (base / "Annotations").glob("*.xml"))
    path = lists / f"{name}.txt"
    if not path.is_file():
        have = sorted(p.stem for p in lists.glob("*.txt")) if lists.is_dir() else []
        raise UserError(f"{path}: image list not found (lists in {lists}: {have or 'none'})")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


@register_dataset("voc_detection", "Pascal VOC XML detection: Annotations/, JPEGImages/, ImageSets/Main/<split>.txt")
def voc_detection(
    root: str,
    train: str | None = None,
    val: str | None = None,
    test: str | None = None,
    class_names: list[str] | None = None,
    skip_bad: bool = False,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> DataBundle:
    """``train`` / ``val`` / ``test`` name image lists in ``ImageSets/Main`` (default: trainval / test as in VOC2007,
    else train / val as in VOC2012, else every XML for training). Class names are ``class_names`` or the training
    objects' names, sorted. ``difficult`` objects have ``iscrowd`` 1."""
    base = _root(root)
    if not (base / "Annotations").is_dir():
        raise UserError(f"{base}: no Annotations/ folder (Pascal VOC layout: Annotations/<id>.xml, JPEGImages/, "
                        "ImageSets/Main/<split>.txt)")
    lists = base / "ImageSets" / "Main"
    chosen = _voc_lists(lists, train, val, test)
    if "train" not in chosen:
        raise UserError("voc_detection: give train= (the training image list) with val= / test=")
    problems = _Problems(base)
    parsed = {split: [img for i in _voc_ids(base, lists, name) if (img := _read_voc_xml(base, i, problems))]
              for split, name in chosen.items()}
    names = list(class_names) if class_names else sorted({o[1] for img in parsed["train"] for o in img.objects})
    if not names:
        raise UserError(f"{base}: no objects in the training annotations, so no class names; pass class_names=[...]")
    splits = {split: DetectionDataset(_voc_samples(images, names, problems), names) for split, images in parsed.items()}
    sources = {s: f"ImageSets/Main/{n}.txt" if n else "Annotations/*.xml" for s, n in chosen.items()}
    return _bundle("voc", base, splits, names, problems, sources=sources,
                   how_to_test="pass test=<ImageSets/Main list name>", skip_bad=skip_bad, test_fraction=test_fraction,
                   seed=seed)


# ---------------------------------------------------------------------------------------------------------------- YOLO

def _yolo_splits(base: Path) -> dict[str, tuple[Path, Path]]:
    """split -> (images folder, labels folder), from images/<split> + labels/<split> or <split>/images + labels."""
    found: dict[str, tuple[Path, Path]] = {}
    images = base / "images"
    if images.is_dir():
        subs = _split_dirs(images)
        for split, d in subs:
            found.setdefault(split, (d, base / "labels" / d.name))
        if not subs:
            found["train"] = (images, base / "labels")
    for split, d in _split_dirs(base):
        if (d / "images").is_dir():
            found.setdefault(split, (d / "images", d / "labels"))
    return found


def _yolo_class_names(base: Path) -> list[str]:
    for path in (base / "data.yaml", base / "data.yml", base / "dataset.yaml"):
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text())
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
                raise UserError(f"{path}: cannot read ({e})") from None
            names = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, dict) and sorted(names) == list(range(len(names))):
                return [str(names[k]) for k in range(len(names))]
            if isinstance(names, list) and names:
                return [str(n) for n in names]
            raise UserError(f"{path}: 'names' must be a list of class names or a mapping {{0: name, 1: ...}}, "
                            f"got {names!r}")
    for path in (base / "classes.txt", base / "labels" / "classes.txt"):
        if path.is_file():
            return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    raise UserError(f"{base}: no class names: looked for data.yaml (names: [...]) and classes.txt (one name a line); "
                    "or pass class_names=[...]")


def _read_yolo_labels(path: Path, size: tuple[int, int], num_classes: int, problems: _Problems
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """(xyxy boxes float64 (M, 4) in pixels, labels) of one label file; None when the file cannot be read at all."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        problems.bad(path, "", f"cannot read ({e})")
        return None
    rows, numbers = [], []
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            problems.bad(path, f"line {n}", f"5 values expected (class cx cy w h), got {len(parts)}")
            continue
        try:
            cls, values = int(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            problems.bad(path, f"line {n}", f"an integer class and 4 numbers expected, got {line.strip()!r}")
            continue
        if not 0 <= cls < num_classes:
            problems.bad(path, f"line {n}", f"class {cls} is not in 0..{num_classes - 1} ({num_classes} class names)")
        elif not all(math.isfinite(v) for v in values):
            problems.bad(path, f"line {n}", f"cx cy w h must be finite numbers, got {line.strip()!r}")
        else:
            rows.append((cls, *values))
            numbers.append(n)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    w, h = size
    cx, cy, bw, bh = table[:, 1] * w, table[:, 2] * h, table[:, 3] * w, table[:, 4] * h
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    keep = problems.clip(boxes, w, h, lambda i: f"{problems.name(path)} line {numbers[i]}")
    return boxes[keep], table[keep, 0].astype(np.int64)


@register_dataset("yolo_detection", "YOLO txt detection: images/<split>/ + labels/<split>/, names in data.yaml")
def yolo_detection(
    root: str,
    class_names: list[str] | None = None,
    skip_bad: bool = False,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> DataBundle:
    """Every image under a split's images folder, with the ``.txt`` of the same relative name under its labels folder
    (missing: no objects). Class names are ``class_names``, else ``data.yaml``'s ``names`` or ``classes.txt``."""
    base = _root(root)
    found = _yolo_splits(base)
    if "train" not in found:
        raise UserError(f"{base}: no YOLO training images: looked for images/train/, train/images/ and images/ "
                        "(with labels/ beside them)")
    names = list(class_names) if class_names else _yolo_class_names(base)
    problems = _Problems(base)
    splits = {}
    for split, (images, labels) in found.items():
        samples = []
        for image in _image_files(images):
            if (size := problems.image_size(image)) is None:
                continue
            label_file = (labels / image.relative_to(images)).with_suffix(".txt")
            if not label_file.is_file():  # YOLO's convention: an image without a label file has no objects
                boxes, classes = np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
            elif (read := _read_yolo_labels(label_file, size, len(names), problems)) is None:
                continue
            else:
                boxes, classes = read
            samples.append((str(image), _annotation(boxes, classes, np.zeros(len(classes)), len(samples))))
        splits[split] = DetectionDataset(samples, names)
    sources = {s: problems.name(images) for s, (images, _) in found.items()}
    return _bundle("yolo", base, splits, names, problems, sources=sources,
                   how_to_test="add images/val/ (or images/test/) with labels/val/", skip_bad=skip_bad,
                   test_fraction=test_fraction, seed=seed)


# ------------------------------------------------------------------------------------------------------ any of them

def detection_formats(root: str | os.PathLike[str]) -> list[str]:
    """The detection formats whose layout ``root`` has: usually one, none for anything else (an ImageFolder)."""
    base = Path(root)
    if not base.is_dir():
        return []
    found = []
    if _find_coco_files(base):
        found.append("coco")
    if (base / "Annotations").is_dir() and any((base / "Annotations").glob("*.xml")):
        found.append("voc")
    if any(labels.is_dir() and next(labels.rglob("*.txt"), None) for _, labels in _yolo_splits(base).values()):
        found.append("yolo")
    return found


@register_dataset("detection_folder", "your detection data (COCO JSON, Pascal VOC XML or YOLO txt), format from layout")
def detection_folder(root: str, format: str = "auto", skip_bad: bool = False, test_fraction: float = 0.0,
                     seed: int = 0) -> DataBundle:
    """``format``: ``auto`` (from the layout), ``coco``, ``voc`` or ``yolo``; the format's loader with its defaults
    reads ``root`` (use ``coco_detection`` / ``voc_detection`` / ``yolo_detection`` for their other options)."""
    base = _root(root)
    if format == "auto":
        found = detection_formats(base)
        if not found:
            raise UserError(f"{base}: cannot tell the detection format: looked for {_LOOKED_FOR}; pass format=coco, "
                            "voc or yolo, or use coco_detection / voc_detection / yolo_detection with their options")
        if len(found) > 1:
            raise UserError(f"{base}: has the layouts of {' and '.join(found)} at once; pass format= to choose")
        format = found[0]
    loaders = {"coco": coco_detection, "voc": voc_detection, "yolo": yolo_detection}
    if format not in loaders:
        raise UserError(f"detection_folder: format must be auto, {', '.join(FORMATS)}, not {format!r}")
    return loaders[format](str(base), skip_bad=skip_bad, test_fraction=test_fraction, seed=seed)


# ---------------------------------------------------------------------------------------------------------- transforms

def _sanitized_with_boxes(inputs: tuple[Any, dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """SanitizeBoundingBoxes' ``labels_getter``: labels and iscrowd are dropped with their boxes."""
    return inputs[1]["labels"], inputs[1]["iscrowd"]


class DetectionTransform:
    """``(PIL image, raw target) -> (float tensor (3, H, W), target)``: the torchvision v2 ``ops`` applied to the image
    and its boxes together. The returned target's ``boxes`` are in pixels of the model input, ``orig_size`` is the
    raw image's (h, w) so predictions can be scaled back."""

    def __init__(self, ops: v2.Compose) -> None:
        self.ops = ops

    def __call__(self, image: Image.Image, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        w, h = rgb.size
        pixels = tv_tensors.Image(F.pil_to_tensor(rgb))  # (3, h, w) uint8
        boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(h, w))
        pixels, out = self.ops(pixels, {"boxes": boxes, "labels": target["labels"], "iscrowd": target["iscrowd"]})
        return pixels.as_subclass(torch.Tensor), {
            "boxes": out["boxes"].as_subclass(torch.Tensor).to(torch.float32),
            "labels": out["labels"],
            "iscrowd": out["iscrowd"],
            "image_id": target["image_id"],
            "orig_size": torch.tensor([h, w], dtype=torch.int64),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ops})"


def build_detection_transform(data_config: DataConfig, aug: AugmentConfig | None) -> DetectionTransform:
    """Evaluation (``aug=None``): resize to exactly ``input_size`` (aspect not kept, as SSD), scale to [0, 1],
    normalize. Training adds before the resize, as ``aug`` asks: photometric distortion, zoom out, SSD's random IoU
    crop (``crop="iou"``), flips; and drops boxes left degenerate (with their labels and iscrowd) at the end."""
    in_chans, h, w = data_config.input_size
    if in_chans != 3:
        raise ValueError(f"detection reads RGB images (in_chans=3), not in_chans={in_chans}")
    ops: list[Any] = []
    if aug is not None:
        if aug.crop not in ("iou", "none"):
            raise ValueError(f"detection supports aug.crop 'iou' (SSD's random IoU crop) or 'none', not {aug.crop!r}")
        if aug.rand_augment or aug.re_prob > 0:
            raise ValueError("RandAugment and random erasing are classification augmentations: set "
                             "aug.rand_augment=null and aug.re_prob=0 for detection")
        if aug.photometric > 0:
            ops.append(v2.RandomPhotometricDistort(p=aug.photometric))
        if aug.zoom_out > 0:
            fill = tuple(round(255 * m) for m in data_config.mean)  # the mean colour: zero after normalization
            ops.append(v2.RandomZoomOut(fill={tv_tensors.Image: fill, "others": 0},
                                        side_range=(1.0, aug.zoom_out_max), p=aug.zoom_out))
        if aug.crop == "iou":
            ops += [v2.RandomIoUCrop(), v2.SanitizeBoundingBoxes(labels_getter=_sanitized_with_boxes)]
        if aug.hflip > 0:
            ops.append(v2.RandomHorizontalFlip(aug.hflip))
        if aug.vflip > 0:
            ops.append(v2.RandomVerticalFlip(aug.vflip))
    ops += [v2.Resize((h, w), interpolation=interpolation_mode(data_config.interpolation), antialias=True),
            v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(data_config.mean), list(data_config.std))]
    if aug is not None:
        ops.append(v2.SanitizeBoundingBoxes(labels_getter=_sanitized_with_boxes))
    return DetectionTransform(v2.Compose(ops))


def detection_collate(samples: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[torch.Tensor, list[dict]]:
    """``(images (B, C, H, W), [target per image])``: images stacked, targets (variable numbers of boxes) kept apart."""
    return torch.stack([image for image, _ in samples]), [target for _, target in samples]
