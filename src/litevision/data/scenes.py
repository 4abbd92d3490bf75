"""Generated detection datasets, offline and lazy: Fashion-MNIST scenes and shapes.

* ``fashion_mnist_scenes``: 1-6 items of the bundled Fashion-MNIST subset (Xiao, Rasul & Vollgraf 2017, MIT licence)
  scaled and pasted on procedural textured canvases (smooth noise, gradients, stripes, checkers, plain colour, with or
  without grain). An item is pasted through a mask from its own intensity (the items are light on black), so the
  background shows around it and through its holes, and tinted; its box is the tight box of that mask. Train canvases
  use subset-train items only, val and test disjoint stratified halves of the subset-test items: no item is seen in
  two splits.
* ``shapes``: 1-4 circles, squares and triangles (rotated) of random colours and sizes on a plain or noisy background,
  drawn with PIL; a detector learns it in a minute of CPU, for fast tests.

A canvas is generated when it is indexed, as a pure function of (seed, split, index): building a bundle is instant,
every access gives the same pixels, and :meth:`GeneratedScenes.scene` shows the objects' masks and source items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from litevision.data._image import stratified_indices
from litevision.data.detection import make_target
from litevision.data.fashion_mnist import CLASS_NAMES as FASHION_CLASSES
from litevision.data.fashion_mnist import fashion_mnist_subset
from litevision.data.registry import DataBundle, register_dataset
from litevision.errors import UserError

SHAPE_CLASSES = ["circle", "square", "triangle"]
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
# Per-channel mean / std of the pixels (/ 255) of 256 training canvases spread evenly over the split, at the default
# options (seed 0), measured once: estimate_statistics(build_dataset(name).train, 3, max_images=256)
# (litevision.data.pipeline).
FASHION_SCENES_MEAN, FASHION_SCENES_STD = (0.3905, 0.3905, 0.3964), (0.2123, 0.2117, 0.2164)
SHAPES_MEAN, SHAPES_STD = (0.4955, 0.4748, 0.4766), (0.2907, 0.2892, 0.2956)


@dataclass(frozen=True)
class Scene:
    """One canvas: ``pixels`` (H, W, 3) uint8, ``boxes`` float32 (M, 4) xyxy, ``labels`` int64 (M,); ``masks[k]`` is
    ``(top, left, bool mask)``: where object ``k``'s own pixels lie on the canvas (a later object may cover some);
    ``sources[k]`` the index of its source image in the dataset's ``images`` (-1 for drawn shapes)."""

    pixels: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: list[tuple[int, int, np.ndarray]]
    sources: np.ndarray


class GeneratedScenes(Dataset):
    """``count`` generated canvases of one split; ``dataset[i]`` is ``(PIL image, target)`` of :meth:`scene`."""

    def __init__(self, count: int, *, size: int, seed: int, split: str) -> None:
        self.count, self.size, self.seed, self.split = count, size, seed, split

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[Image.Image, dict]:
        scene = self.scene(index)
        return Image.fromarray(scene.pixels), make_target(scene.boxes, scene.labels, image_id=index)

    def rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.count:
            raise IndexError(f"canvas {index} of a split of {self.count}")
        return np.random.default_rng((self.seed, _SPLIT_CODE[self.split], index))

    def scene(self, index: int) -> Scene:
        raise NotImplementedError

    def sources(self, index: int) -> np.ndarray:
        """The source image of each object of canvas ``index`` (indices into ``images``)."""
        return self.scene(index).sources


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    wh = np.clip(np.minimum(box[2:], boxes[:, 2:]) - np.maximum(box[:2], boxes[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter)


def _place(rng: np.random.Generator, mask: np.ndarray, size: int, placed: list[np.ndarray], max_iou: float,
           tries: int = 10) -> tuple[int, int, np.ndarray] | None:
    """(top, left, tight xyxy box) for a patch with ``mask`` wholly on the canvas, its box overlapping every box in
    ``placed`` by IoU < ``max_iou``; None when the mask is empty or ``tries`` positions all overlap."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    tight = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)
    height, width = mask.shape
    for _ in range(tries):
        top, left = int(rng.integers(0, size - height + 1)), int(rng.integers(0, size - width + 1))
        box = tight + (left, top, left, top)
        if not placed or _iou(box, np.stack(placed)).max() < max_iou:
            return top, left, box
    return None


def _scene(pixels: np.ndarray, boxes: list[np.ndarray], labels: list[int], masks: list, sources: list[int]) -> Scene:
    return Scene(pixels, np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64),
                 masks, np.asarray(sources, dtype=np.int64))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured canvas (size, size, 3) float32 in 0..255: smooth noise, a gradient, stripes, a checker or a plain
    colour between two random colours, with fine grain half of the time. Colours stay below 200 so most items (light)
    stand out, though not always."""
    c0, c1 = rng.uniform(0, 200, (2, 3)).astype(np.float32)
    kind = int(rng.integers(5))
    xs = np.arange(size, dtype=np.float32) / size
    if kind == 0:  # smooth noise: random colours on a coarse grid, upsampled bicubically
        cells = int(rng.integers(2, 9))
        grid = rng.uniform(0, 200, (cells, cells, 3)).astype(np.uint8)
        canvas = np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), dtype=np.float32)
    else:
        if kind == 1:  # linear gradient at a random angle
            angle = rng.uniform(0, 2 * math.pi)
            t = math.cos(angle) * xs[None, :] + math.sin(angle) * xs[:, None]
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        elif kind == 2:  # stripes at a random angle and period, soft or hard
            angle, periods, phase = rng.uniform(0, math.pi), rng.uniform(3, 16), rng.uniform(0, 2 * math.pi)
            along = math.cos(angle) * xs[None, :] + math.sin(angle) * xs[:, None]
            t = 0.5 + 0.5 * np.sin(2 * math.pi * periods * along + phase)
            if rng.random() < 0.5:
                t = (t > 0.5).astype(np.float32)
        elif kind == 3:  # checker with a random cell size and offset
            cell = int(rng.integers(max(2, size // 20), max(3, size // 4)))
            cells = (np.arange(size) + int(rng.integers(cell))) // cell
            t = ((cells[None, :] + cells[:, None]) % 2).astype(np.float32)
        else:  # plain
            t = np.zeros((size, size), dtype=np.float32)
        canvas = c0 + t[..., None] * (c1 - c0)
    if rng.random() < 0.5:
        canvas = canvas + rng.standard_normal((size, size, 1), dtype=np.float32) * np.float32(rng.uniform(3, 12))
    return canvas


class FashionMNISTScenes(GeneratedScenes):
    """Canvases of Fashion-MNIST items drawn from ``pool`` (indices into ``images`` (N, 28, 28) uint8)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, pool: np.ndarray, count: int, *, size: int,
                 min_items: int, max_items: int, seed: int, split: str) -> None:
        super().__init__(count, size=size, seed=seed, split=split)
        self.images, self.labels, self.pool = images, labels, np.asarray(pool, dtype=np.int64)
        self.min_items, self.max_items = min_items, max_items

    def scene(self, index: int) -> Scene:
        rng = self.rng(index)
        size = self.size
        canvas = _background(rng, size)
        boxes, labels, masks, sources = [], [], [], []
        low, high = math.log(0.1 * size), math.log(0.5 * size)  # 32..160 px item side on a 320 canvas
        for _ in range(int(rng.integers(self.min_items, self.max_items + 1))):
            source = int(self.pool[rng.integers(len(self.pool))])
            side, stretch = math.exp(rng.uniform(low, high)), math.exp(rng.uniform(-0.2, 0.2))
            height, width = min(size, max(8, round(side * stretch))), min(size, max(8, round(side / stretch)))
            item = Image.fromarray(self.images[source]).resize((width, height), Image.BILINEAR)
            grey = np.asarray(item, dtype=np.float32) / 255.0
            alpha = np.clip((grey - 0.04) * 8.0, 0.0, 1.0)  # black -> transparent, opaque from ~0.17 up
            mask = alpha >= 0.5
            spot = _place(rng, mask, size, boxes, max_iou=0.3)
            if spot is None:
                continue
            top, left, box = spot
            tint = rng.uniform(0.55, 1.0, 3).astype(np.float32) * 255.0
            region = canvas[top:top + height, left:left + width]
            region += alpha[..., None] * (grey[..., None] * tint - region)
            boxes.append(box)
            labels.append(int(self.labels[source]))
            masks.append((top, left, mask))
            sources.append(source)
        pixels = np.clip(canvas, 0, 255).astype(np.uint8)
        return _scene(pixels, boxes, labels, masks, sources)


class ShapeScenes(GeneratedScenes):
    """Canvases of circles, squares and triangles (labels index :data:`SHAPE_CLASSES`)."""

    def scene(self, index: int) -> Scene:
        rng = self.rng(index)
        size = self.size
        background = rng.uniform(0, 255, 3)
        canvas = np.broadcast_to(background.astype(np.float32), (size, size, 3)).copy()
        if rng.random() < 0.5:
            canvas += rng.standard_normal((size, size, 1), dtype=np.float32) * np.float32(rng.uniform(4, 16))
        pixels = np.clip(canvas, 0, 255).astype(np.uint8)
        boxes, labels, masks = [], [], []
        for _ in range(int(rng.integers(1, 5))):
            label, side = int(rng.integers(3)), int(rng.integers(round(0.15 * size), round(0.4 * size) + 1))
            mask = _shape_mask(label, side, rng.uniform(0, 2 * math.pi))
            spot = _place(rng, mask, size, boxes, max_iou=0.1)
            if spot is None:
                continue
            top, left, box = spot
            colour = rng.uniform(0, 255, 3)
            if np.abs(colour - background).sum() < 150:  # keep the shape visible: the opposite colour
                colour = 255.0 - background
            pixels[top:top + side, left:left + side][mask] = colour.astype(np.uint8)
            boxes.append(box)
            labels.append(label)
            masks.append((top, left, mask))
        return _scene(pixels, boxes, labels, masks, [-1] * len(labels))


def _shape_mask(label: int, side: int, angle: float) -> np.ndarray:
    """A (side, side) bool mask of a circle, or a square / equilateral triangle rotated by ``angle``."""
    patch = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(patch)
    if label == 0:
        draw.ellipse((0, 0, side - 1, side - 1), fill=255)
    else:
        corners = 4 if label == 1 else 3
        centre, radius = (side - 1) / 2, (side - 1) / 2
        draw.polygon([(centre + radius * math.cos(angle + 2 * math.pi * k / corners),
                       centre + radius * math.sin(angle + 2 * math.pi * k / corners)) for k in range(corners)],
                     fill=255)
    return np.asarray(patch) > 127


def _check_counts(name: str, size: int, min_size: int, **counts: int) -> None:
    if size < min_size:
        raise UserError(f"{name}: size must be at least {min_size}, not {size}")
    for option, count in counts.items():
        if count < (0 if option == "val" else 1):
            raise UserError(f"{name}: {option} must be {'0 (no val split) or more' if option == 'val' else 'positive'}"
                            f", not {count}")


@register_dataset("fashion_mnist_scenes", "detection: 1-6 Fashion-MNIST items on textured canvases, 10 classes")
def fashion_mnist_scenes(size: int = 320, train: int = 3000, val: int = 500, test: int = 1000, min_items: int = 1,
                         max_items: int = 6, seed: int = 0) -> DataBundle:
    """``train`` / ``val`` / ``test`` canvases of ``size`` x ``size`` with ``min_items``..``max_items`` items each
    (fewer when an item finds no place overlapping the others by IoU < 0.3 in 10 tries)."""
    _check_counts("fashion_mnist_scenes", size, 64, train=train, val=val, test=test)
    if not 0 <= min_items <= max_items or max_items < 1:
        raise UserError(f"fashion_mnist_scenes: need 0 <= min_items <= max_items and max_items >= 1, got "
                        f"{min_items}..{max_items}")
    if seed < 0:
        raise UserError(f"fashion_mnist_scenes: seed must be >= 0, not {seed}")
    source = fashion_mnist_subset()
    train_images, test_images = source.train, source.test
    val_pool, test_pool = stratified_indices(test_images.labels, 0.5, seed)  # disjoint halves, 50 per class each
    options = {"size": size, "min_items": min_items, "max_items": max_items, "seed": seed}
    return DataBundle(
        train=FashionMNISTScenes(train_images.images, train_images.labels, np.arange(len(train_images)), train,
                                 split="train", **options),
        val=FashionMNISTScenes(test_images.images, test_images.labels, val_pool, val, split="val", **options)
        if val else None,
        test=FashionMNISTScenes(test_images.images, test_images.labels, test_pool, test, split="test", **options),
        num_classes=len(FASHION_CLASSES), in_chans=3, class_names=list(FASHION_CLASSES), kind="image",
        task="detection", native_size=(size, size),
        description=f"Fashion-MNIST scenes {size}x{size} ({train}/{val}/{test})",
        extra={"mean": FASHION_SCENES_MEAN, "std": FASHION_SCENES_STD,
               "licence": "MIT (Zalando SE) for the Fashion-MNIST items; canvases generated"},
    )


@register_dataset("shapes", "detection: 1-4 circles, squares and triangles on plain or noisy backgrounds, 3 classes")
def shapes(size: int = 128, train: int = 256, val: int = 64, test: int = 64, seed: int = 0) -> DataBundle:
    _check_counts("shapes", size, 32, train=train, val=val, test=test)
    if seed < 0:
        raise UserError(f"shapes: seed must be >= 0, not {seed}")
    return DataBundle(
        train=ShapeScenes(train, size=size, seed=seed, split="train"),
        val=ShapeScenes(val, size=size, seed=seed, split="val") if val else None,
        test=ShapeScenes(test, size=size, seed=seed, split="test"),
        num_classes=len(SHAPE_CLASSES), in_chans=3, class_names=list(SHAPE_CLASSES), kind="image", task="detection",
        native_size=(size, size), description=f"shapes {size}x{size} ({train}/{val}/{test})",
        extra={"mean": SHAPES_MEAN, "std": SHAPES_STD, "licence": "generated (no third-party content)"},
    )
