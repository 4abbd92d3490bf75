"""Detections drawn on images with PIL alone (no matplotlib): predicted boxes solid with their class and score,
true boxes dashed, and a grid of test images for a report.

Boxes are ``xyxy`` in the pixels of the image they are drawn on; for a model's input that is the resized image
:func:`denormalize` recovers from the normalized tensor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

# matplotlib's tab10, then tab20's light shades: neighbouring class ids get distinct colours
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
           (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
           (219, 219, 141), (158, 218, 229))
PRED_COLOR = (230, 25, 75)  # without color_by_class: predictions red, truth green
TRUTH_COLOR = (60, 180, 75)

BoxesLike = Tensor | np.ndarray | Sequence[Sequence[float]]
LabelsLike = Tensor | np.ndarray | Sequence[int]


def _array(value: Any, dtype: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().cpu().float().numpy() if value.is_floating_point() else value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def class_color(label: int) -> tuple[int, int, int]:
    return PALETTE[int(label) % len(PALETTE)]


def denormalize(tensor: Tensor, mean: Sequence[float], std: Sequence[float]) -> Image.Image:
    """The image a normalized (C, H, W) input came from (``x * std + mean``, ``mean`` / ``std`` in 0..1): RGB for
    three channels, grayscale for one."""
    x = tensor.detach().float().cpu()
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected a (1 or 3, H, W) image tensor, got shape {tuple(x.shape)}")
    m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
    pixels = (x * s + m).clamp(0, 1).mul(255).round().to(torch.uint8)
    if x.shape[0] == 1:
        return Image.fromarray(pixels[0].numpy())
    return Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy())  # (C, H, W) -> (H, W, C)


def _clip_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    x1, x2 = sorted((min(max(box[0], 0), width - 1), min(max(box[2], 0), width - 1)))
    y1, y2 = sorted((min(max(box[1], 0), height - 1), min(max(box[3], 0), height - 1)))
    return x1, y1, x2, y2


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float],
                      color: tuple[int, int, int], width: int, dash: int = 6, gap: int = 4) -> None:
    x1, y1, x2, y2 = box
    for ax, ay, bx, by in ((x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2), (x1, y2, x1, y1)):
        length = math.hypot(bx - ax, by - ay)
        if length == 0:
            continue
        start = 0.0
        while start < length:
            s, e = start / length, min(start + dash, length) / length
            draw.line([(ax + (bx - ax) * s, ay + (by - ay) * s), (ax + (bx - ax) * e, ay + (by - ay) * e)],
                      fill=color, width=width)
            start += dash + gap


def _label(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], text: str,
           color: tuple[int, int, int], font: Any, image_width: int) -> None:
    """``text`` on a filled tag above the box's top-left corner (inside the box when there is no room above),
    moved left where it would leave the image."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 4, bottom - top + 2
    x = max(min(box[0], image_width - 1 - w), 0)
    y = box[1] - h if box[1] >= h else box[1]
    draw.rectangle([x, y, x + w, y + h], fill=color)
    light = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 150
    draw.text((x + 2 - left, y + 1 - top), text, fill=(0, 0, 0) if light else (255, 255, 255), font=font)


def draw_detections(
    image: Image.Image,
    boxes: BoxesLike,
    labels: LabelsLike,
    scores: Tensor | np.ndarray | Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    *,
    truth: Mapping[str, Any] | tuple[BoxesLike, LabelsLike] | None = None,
    color_by_class: bool = True,
    min_score: float = 0.0,
    line_width: int = 2,
) -> Image.Image:
    """A copy of ``image`` (RGB) with the predicted boxes drawn solid and tagged "class score", and the true boxes
    ``truth`` (``{"boxes", "labels"}`` or a ``(boxes, labels)`` pair) dashed.

    Colours follow the class (``color_by_class``), or are red for predictions and green for truth. Predictions
    scoring below ``min_score`` are left out; the best scores are drawn last, on top.
    """
    out = image.convert("RGB")  # always a copy
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()

    def name(label: int) -> str:
        return class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)

    if truth is not None:
        true_boxes, true_labels = (truth["boxes"], truth["labels"]) if isinstance(truth, Mapping) else truth
        for box, label in zip(_array(true_boxes, np.float64).reshape(-1, 4), _array(true_labels, np.int64).reshape(-1)):
            color = class_color(label) if color_by_class else TRUTH_COLOR
            _dashed_rectangle(draw, _clip_box(box, out.width, out.height), color, line_width)
    boxes_np = _array(boxes, np.float64).reshape(-1, 4)
    labels_np = _array(labels, np.int64).reshape(-1)
    scores_np = None if scores is None else _array(scores, np.float64).reshape(-1)
    order = range(len(boxes_np)) if scores_np is None else np.argsort(scores_np, kind="stable")
    for i in order:
        if scores_np is not None and scores_np[i] < min_score:
            continue
        label = int(labels_np[i])
        color = class_color(label) if color_by_class else PRED_COLOR
        box = _clip_box(boxes_np[i], out.width, out.height)
        draw.rectangle(box, outline=color, width=line_width)
        text = name(label) if scores_np is None else f"{name(label)} {scores_np[i]:.2f}"
        _label(draw, box, text, color, font, out.width)
    return out


def detection_grid(
    images: Sequence[Image.Image],
    predictions: Sequence[Mapping[str, Any]],
    truths: Sequence[Mapping[str, Any]] | None = None,
    class_names: Sequence[str] | None = None,
    *,
    path: str | os.PathLike[str],
    columns: int = 4,
    min_score: float = 0.0,
    padding: int = 4,
) -> Path:
    """Write a PNG grid of ``images`` with their predicted boxes (``{"boxes", "labels", "scores"}`` per image,
    ``scores`` optional) and true boxes (``{"boxes", "labels"}``) drawn by :func:`draw_detections`.

    Cells are as large as the largest image, ``columns`` per row, ``padding`` white pixels around each."""
    if not images:
        raise ValueError("no images to draw")
    if len(predictions) != len(images) or (truths is not None and len(truths) != len(images)):
        raise ValueError(f"{len(images)} images need as many predictions and truths")
    tiles = [draw_detections(image, pred["boxes"], pred["labels"], pred.get("scores"), class_names,
                             truth=None if truths is None else truths[i], min_score=min_score)
             for i, (image, pred) in enumerate(zip(images, predictions))]
    cols = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    cell_w, cell_h = max(t.width for t in tiles), max(t.height for t in tiles)
    grid = Image.new("RGB", (cols * cell_w + (cols + 1) * padding, rows * cell_h + (rows + 1) * padding),
                     (255, 255, 255))
    for i, tile in enumerate(tiles):
        row, col = divmod(i, cols)
        grid.paste(tile, (padding + col * (cell_w + padding), padding + row * (cell_h + padding)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, format="PNG")
    return path
