"""litevision: lightweight image classification models, plug-in modules and the tools to compare,
benchmark and export them."""

from litevision.bench.complexity import Complexity, count_complexity, register_macs_formula
from litevision.compress import PruneResult, prune
from litevision.layers.fuse import fuse_model
from litevision.models import create_model, get_model_card, list_models, load_checkpoint
from litevision.modules import create_module, get_module_card, list_modules
from litevision.modules.stitch import stitch
from litevision.version import __version__

__all__ = [
    "__version__",
    "Complexity",
    "PruneResult",
    "count_complexity",
    "create_model",
    "create_module",
    "fuse_model",
    "get_model_card",
    "get_module_card",
    "list_models",
    "list_modules",
    "load_checkpoint",
    "prune",
    "register_macs_formula",
    "stitch",
]
