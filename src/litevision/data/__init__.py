"""Datasets, transforms and loaders. Every file here not starting with ``_`` (other than the registry,
pipeline, loader and transforms) registers its datasets on import."""

import importlib
import pkgutil

from litevision.data.detection import (
    DetectionDataset,
    DetectionTransform,
    build_detection_transform,
    detection_collate,
    detection_formats,
    make_target,
)
from litevision.data.pipeline import (
    absolute_data_path,
    data_config_for,
    detection_eval_dataset,
    detection_train_dataset,
    eval_dataset,
    load_bundle,
    split_dataset,
    train_dataset,
)
from litevision.data.registry import DATASETS, DataBundle, build_dataset, list_datasets, register_dataset
from litevision.data.transforms import AugmentConfig, build_eval_transform

_INFRASTRUCTURE = {"registry", "pipeline", "loader", "transforms"}  # the other modules register datasets
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_") and _info.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "DATASETS",
    "AugmentConfig",
    "build_eval_transform",
    "DataBundle",
    "DetectionDataset",
    "DetectionTransform",
    "absolute_data_path",
    "build_dataset",
    "build_detection_transform",
    "data_config_for",
    "detection_collate",
    "detection_eval_dataset",
    "detection_formats",
    "detection_train_dataset",
    "eval_dataset",
    "list_datasets",
    "load_bundle",
    "make_target",
    "register_dataset",
    "split_dataset",
    "train_dataset",
]
