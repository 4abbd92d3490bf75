"""Model families, the registry and factory, model cards, checkpoint loading and trained-weights files.

Every module in this package that does not start with ``_`` is a family file that registers its variants on
import. Other packages import from ``litevision.models`` (this namespace), never from its ``_`` modules.
"""

import importlib
import pkgutil

from litevision.models._builder import (
    MODELS,
    Variant,
    create_model,
    get_model_card,
    list_models,
    register_family,
    register_model,
)
from litevision.models._card import IMAGENET_MEAN, IMAGENET_STD, DataConfig, ModelCard, Paper, PaperFigures
from litevision.models._contract import FeatureExtractor, LiteModel, feature
from litevision.models._detection import Detector, DetectorExport, PostprocessCfg, check_targets, select_detections
from litevision.models._peers import ModelSpec, create_any_model, parse_model_spec, resolve_data_config
from litevision.models._saved import (
    WEIGHTS_FORMAT,
    data_config_from_metadata,
    is_litevision_weights,
    load_trained_model,
    load_weights,
    read_metadata,
    resolve_weights_path,
    save_weights,
    weights_metadata,
)
from litevision.models._structure import STRUCTURE_FORMAT, apply_structure, checkpoint_structure, model_structure
from litevision.models._weights import CheckpointMismatchError, CheckpointReadError, load_checkpoint, read_state_dict

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODELS",
    "STRUCTURE_FORMAT",
    "WEIGHTS_FORMAT",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "DataConfig",
    "Detector",
    "DetectorExport",
    "FeatureExtractor",
    "LiteModel",
    "ModelCard",
    "ModelSpec",
    "Paper",
    "PaperFigures",
    "PostprocessCfg",
    "Variant",
    "apply_structure",
    "checkpoint_structure",
    "create_any_model",
    "check_targets",
    "create_model",
    "data_config_from_metadata",
    "feature",
    "get_model_card",
    "is_litevision_weights",
    "list_models",
    "parse_model_spec",
    "load_checkpoint",
    "load_trained_model",
    "load_weights",
    "model_structure",
    "read_metadata",
    "read_state_dict",
    "register_family",
    "register_model",
    "resolve_data_config",
    "resolve_weights_path",
    "save_weights",
    "select_detections",
    "weights_metadata",
]
