"""Plug-in attention / convolution modules (seed 004). Every file here not starting with ``_`` registers
its modules on import."""

import importlib
import pkgutil

from litevision.modules._registry import (
    MODULES,
    REF_CHANNELS,
    REF_SIZE,
    ModuleCard,
    create_module,
    get_module_card,
    list_modules,
    register_module,
)

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "MODULES",
    "REF_CHANNELS",
    "REF_SIZE",
    "ModuleCard",
    "create_module",
    "get_module_card",
    "list_modules",
    "register_module",
]
