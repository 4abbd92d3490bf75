"""Model families. Every module in this package that does not start with ``_`` is a family file that
registers its variants on import."""

import importlib
import pkgutil

from litevision.models._builder import MODELS, create_model, get_model_card, list_models, register_model
from litevision.models._card import ModelCard
from litevision.models._contract import FeatureExtractor, LiteModel, feature
from litevision.models._weights import CheckpointMismatchError, load_checkpoint, read_state_dict

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "MODELS",
    "CheckpointMismatchError",
    "FeatureExtractor",
    "LiteModel",
    "ModelCard",
    "create_model",
    "feature",
    "get_model_card",
    "list_models",
    "load_checkpoint",
    "read_state_dict",
    "register_model",
]
