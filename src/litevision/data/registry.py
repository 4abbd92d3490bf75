"""Named datasets: ``build_dataset(name, **options)`` returns a :class:`DataBundle`.

A bundle holds train / test (and optional val) ``torch.utils.data.Dataset`` objects yielding
``(sample, label)``. ``kind`` says what a sample is:

* ``"image"``: a ``PIL.Image`` (mode "L" or "RGB"); the training/eval pipeline applies the model's image
  transforms (resize/crop to the model input, augmentation, normalization).
* ``"tensor"``: a ready float tensor (e.g. a hyperspectral patch (1, bands, H, W)) used as it is.

``task`` names the training task the data is meant for (``litevision.engine.tasks``): ``classification``
(the default), ``hyperspectral`` (per-pixel patches of a scene, reported as OA / AA / kappa and a class map).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch.utils.data import Dataset

from litevision.registry import Registry


@dataclass
class DataBundle:
    train: Dataset
    test: Dataset
    num_classes: int
    in_chans: int
    class_names: list[str]
    kind: Literal["image", "tensor"] = "image"
    task: str = "classification"
    val: Dataset | None = None
    native_size: tuple[int, int] | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


DATASETS: Registry[str] = Registry("dataset", "litevision.data.list_datasets()")


def register_dataset(name: str, description: str) -> Callable[[Callable[..., DataBundle]], Callable[..., DataBundle]]:
    """Decorator registering ``fn(**options) -> DataBundle`` under ``name``; duplicates raise."""

    def deco(fn: Callable[..., DataBundle]) -> Callable[..., DataBundle]:
        DATASETS.register(name, fn, description)
        return fn

    return deco


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


def build_dataset(name: str, **options: Any) -> DataBundle:
    """Build a registered dataset; unknown option names raise ``TypeError``."""
    return DATASETS.get(name).fn(**{k: v for k, v in options.items() if v is not None})
