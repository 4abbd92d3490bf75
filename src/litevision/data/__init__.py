"""Datasets and loaders. Every file here not starting with ``_`` (other than registry) registers its
datasets on import."""

import importlib
import pkgutil

from litevision.data.registry import DATASETS, DataBundle, build_dataset, list_datasets, register_dataset

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_") and _info.name != "registry":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["DATASETS", "DataBundle", "build_dataset", "list_datasets", "register_dataset"]
