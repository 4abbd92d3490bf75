"""Datasets, transforms and loaders. Every file here not starting with ``_`` (other than the registry,
pipeline, loader and transforms) registers its datasets on import."""

import importlib
import pkgutil

from litevision.data.pipeline import (
    absolute_data_path,
    data_config_for,
    eval_dataset,
    load_bundle,
    split_dataset,
    train_dataset,
)
from litevision.data.registry import DATASETS, DataBundle, build_dataset, list_datasets, register_dataset
from litevision.data.transforms import AugmentConfig

_INFRASTRUCTURE = {"registry", "pipeline", "loader", "transforms"}  # the other modules register datasets
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_") and _info.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "DATASETS",
    "AugmentConfig",
    "DataBundle",
    "absolute_data_path",
    "build_dataset",
    "data_config_for",
    "eval_dataset",
    "list_datasets",
    "load_bundle",
    "register_dataset",
    "split_dataset",
    "train_dataset",
]
