"""Image transforms: torchvision geometry, timm RandAugment and random erasing, model-card preprocessing.

Evaluation is resize to ``size / crop_pct`` then a center crop to ``size`` (the model card's crop_pct,
as timm and torchvision evaluate). Training is one of three crops — ``"rrc"`` (RandomResizedCrop, the
ImageNet recipes), ``"pad"`` (resize, then a random crop from a zero-padded image: the small-image
recipes of CIFAR / Fashion-MNIST) or ``"none"`` (the evaluation crop) — then flips, RandAugment, tensor
conversion, normalization and random erasing. Images are converted to "L" or "RGB" to match ``in_chans``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from litevision.models import DataConfig

_INTERPOLATION = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
                  "nearest": InterpolationMode.NEAREST, "lanczos": InterpolationMode.LANCZOS}


@dataclass
class AugmentConfig:
    """The ``aug:`` section of a training recipe (per-sample augmentation; mixup/cutmix act on batches)."""

    crop: str = "rrc"  # "rrc" | "pad" | "none"; detection: "iou" (SSD's random IoU crop) | "none"
    scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop area range
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # RandomResizedCrop aspect range
    pad: int = 4  # "pad" crop: pixels of zero padding on each side
    hflip: float = 0.5
    vflip: float = 0.0
    rand_augment: str | None = None  # timm config string, e.g. "rand-m9-mstd0.5-inc1"
    re_prob: float = 0.0  # random erasing probability (timm RandomErasing)
    re_mode: str = "pixel"  # "const" | "rand" | "pixel"
    re_count: int = 1
    mixup: float = 0.0  # mixup alpha (0 = off)
    cutmix: float = 0.0  # cutmix alpha (0 = off)
    mixup_prob: float = 1.0  # probability of applying mixup or cutmix to a batch
    mixup_switch_prob: float = 0.5  # probability of cutmix instead of mixup when both are on
    mixup_mode: str = "batch"  # "batch" | "pair" | "elem"
    smoothing: float = 0.0  # label smoothing
    # Detection only (data.detection.build_detection_transform); classification ignores them.
    photometric: float = 0.0  # probability of SSD's photometric distortion (brightness, contrast, saturation, hue)
    zoom_out: float = 0.0  # probability of SSD's zoom out: the image on a larger canvas filled with the mean colour
    zoom_out_max: float = 2.0  # zoom out: largest canvas side / image side


def interpolation_mode(name: str) -> InterpolationMode:
    try:
        return _INTERPOLATION[name]
    except KeyError:
        raise ValueError(f"unknown interpolation {name!r}; use one of {sorted(_INTERPOLATION)}") from None


class ToMode:
    """Convert a PIL image to "L" (in_chans=1) or "RGB" (in_chans=3)."""

    def __init__(self, in_chans: int) -> None:
        if in_chans not in (1, 3):
            raise ValueError(f"image datasets feed 1 (grey) or 3 (RGB) channels, not {in_chans}")
        self.mode = "L" if in_chans == 1 else "RGB"

    def __call__(self, img: Image.Image) -> Image.Image:
        return img if img.mode == self.mode else img.convert(self.mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.mode!r})"


def build_eval_transform(cfg: DataConfig) -> T.Compose:
    """Resize to ``size / crop_pct`` (shorter side for square inputs), center crop, tensor, normalize."""
    in_chans, h, w = cfg.input_size
    interp = interpolation_mode(cfg.interpolation)
    if h == w:
        resize = T.Resize(math.floor(h / cfg.crop_pct), interpolation=interp)
    else:
        resize = T.Resize((math.floor(h / cfg.crop_pct), math.floor(w / cfg.crop_pct)), interpolation=interp)
    return T.Compose([ToMode(in_chans), resize, T.CenterCrop((h, w)), T.ToTensor(), T.Normalize(cfg.mean, cfg.std)])


def build_train_transform(cfg: DataConfig, aug: AugmentConfig) -> T.Compose:
    in_chans, h, w = cfg.input_size
    interp = interpolation_mode(cfg.interpolation)
    ops: list = [ToMode(in_chans)]
    if aug.crop == "rrc":
        ops.append(T.RandomResizedCrop((h, w), scale=tuple(aug.scale), ratio=tuple(aug.ratio), interpolation=interp))
    elif aug.crop == "pad":
        ops += [T.Resize((h, w), interpolation=interp), T.RandomCrop((h, w), padding=aug.pad)]
    elif aug.crop == "none":
        ops += list(build_eval_transform(cfg).transforms[1:3])
    else:
        raise ValueError(f"aug.crop must be 'rrc', 'pad' or 'none', not {aug.crop!r}")
    if aug.hflip > 0:
        ops.append(T.RandomHorizontalFlip(aug.hflip))
    if aug.vflip > 0:
        ops.append(T.RandomVerticalFlip(aug.vflip))
    if aug.rand_augment:
        from timm.data.auto_augment import rand_augment_transform

        fill = tuple(round(255 * m) for m in cfg.mean)
        hparams = {"translate_const": int(min(h, w) * 0.45), "img_mean": fill[0] if in_chans == 1 else fill,
                   "interpolation": _PIL_INTERPOLATION.get(cfg.interpolation, Image.BILINEAR)}
        ops.append(rand_augment_transform(aug.rand_augment, hparams))
    ops += [T.ToTensor(), T.Normalize(cfg.mean, cfg.std)]
    if aug.re_prob > 0:
        from timm.data.random_erasing import RandomErasing

        ops.append(RandomErasing(aug.re_prob, mode=aug.re_mode, max_count=aug.re_count, device="cpu"))
    return T.Compose(ops)


_PIL_INTERPOLATION = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
                      "lanczos": Image.LANCZOS}


def resolve_normalization(
    model_mean: Sequence[float],
    model_std: Sequence[float],
    dataset_stats: dict,
    in_chans: int,
    source: str = "auto",
    pretrained: bool = False,
) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """Pick (mean, std, source): ``"model"`` (the card's, what pretrained weights expect), ``"dataset"``
    (the dataset's own statistics) or ``"auto"`` (dataset statistics when training from scratch and the
    dataset has them, otherwise the model's). Statistics of the wrong channel count are averaged."""
    if source not in ("auto", "model", "dataset"):
        raise ValueError(f"normalization source must be auto, model or dataset, not {source!r}")
    has_ds = "mean" in dataset_stats and "std" in dataset_stats
    if source == "dataset" and not has_ds:
        raise ValueError("this dataset does not provide its statistics; use data.norm=model or set data.mean/std")
    use_ds = source == "dataset" or (source == "auto" and has_ds and not pretrained)
    mean, std = (dataset_stats["mean"], dataset_stats["std"]) if use_ds else (model_mean, model_std)
    return _fit(mean, in_chans), _fit(std, in_chans), "dataset" if use_ds else "model"


def _fit(values: Sequence[float], n: int) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if len(values) == n:
        return values
    return (sum(values) / len(values),) * n
