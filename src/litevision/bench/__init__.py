"""Complexity (params, MACs), latency / throughput benchmarks and reports."""

from litevision.bench.complexity import Complexity, count_complexity, count_params, register_macs_formula

__all__ = ["Complexity", "count_complexity", "count_params", "register_macs_formula"]
