"""Complexity (params, MACs) and timing primitives; the per-backend benchmark (:mod:`litevision.bench.benchmark`,
which exports models to ONNX) and the model / module tables are imported from their modules."""

from litevision.bench.complexity import Complexity, count_complexity, count_params, register_macs_formula
from litevision.bench.timing import TimingStats, fixed_threads, time_calls, time_interleaved, timm_style_throughput

__all__ = [
    "Complexity",
    "TimingStats",
    "count_complexity",
    "count_params",
    "fixed_threads",
    "register_macs_formula",
    "time_calls",
    "time_interleaved",
    "timm_style_throughput",
]
