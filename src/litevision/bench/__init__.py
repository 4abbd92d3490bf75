"""Complexity (params, MACs), latency / throughput / memory benchmarks and reports."""

from litevision.bench.benchmark import BACKENDS, BenchResult, bench_model, bench_models, write_results
from litevision.bench.complexity import Complexity, count_complexity, count_params, register_macs_formula
from litevision.bench.timing import TimingStats, time_calls, timm_style_throughput

__all__ = [
    "BACKENDS",
    "BenchResult",
    "Complexity",
    "TimingStats",
    "bench_model",
    "bench_models",
    "count_complexity",
    "count_params",
    "register_macs_formula",
    "time_calls",
    "timm_style_throughput",
    "write_results",
]
