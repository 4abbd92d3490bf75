"""Foundation utilities with no litevision dependencies beyond ``errors``: CPU feature flags, the MACs-formula
registry, atomic file writes and optional-dependency checks. Every layer may import these."""

from litevision.utils.cpu import cpu_description, cpu_flags, cpu_lacks_vnni
from litevision.utils.io import atomic_write, atomic_write_text
from litevision.utils.macs import macs_formulas, register_macs_formula
from litevision.utils.optional import MissingDependencyError, available, require

__all__ = [
    "MissingDependencyError",
    "atomic_write",
    "available",
    "atomic_write_text",
    "cpu_description",
    "cpu_flags",
    "cpu_lacks_vnni",
    "macs_formulas",
    "register_macs_formula",
    "require",
]
