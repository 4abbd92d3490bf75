"""Optional dependencies: heavy parts a user may not need are extras (``pip install 'litevision[export]'``).

:func:`require` imports a module of an extra or raises :class:`MissingDependencyError`, a user error the CLI
prints as one line naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from litevision.errors import UserError

# extra -> what it is for (the module -> extra mapping is given by each call of require)
EXTRAS = {
    "export": "ONNX export, INT8 quantization, ONNX Runtime and OpenCV DNN verification and benchmarks",
    "hsi": "hyperspectral scenes (Indian Pines from tensorly, .mat files)",
    "report": "plots (confusion matrix, ROC / PR, accuracy-vs-cost, classification maps)",
    "datasets": "scikit-learn's digits dataset",
    "detection": "COCO detection metrics (pycocotools)",
    "compress": "structured pruning (Torch-Pruning)",
}


class MissingDependencyError(UserError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str) -> ModuleType:
    """``importlib.import_module(module)``, or a one-line error naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        missing = getattr(e, "name", None) or top
        purpose = EXTRAS.get(extra, extra)
        raise MissingDependencyError(
            f"{missing} is not installed; it is needed for {purpose}: pip install 'litevision[{extra}]'"
        ) from None
