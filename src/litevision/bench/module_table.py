"""The plug-in module table of ``litevision modules`` and the module CPU benchmark.

Params and MACs are for ``create_module(name, 64)`` on one 64x56x56 map (the card's ``ref_params`` /
``ref_macs``, which the metadata test keeps equal to a fresh measurement; ``measure=True`` measures
again). CPU latency at batch 8 (8x64x56x56) comes from ``benchmarks/results/modules_cpu.json``, written by
``benchmarks/modules_cpu.py`` with :func:`benchmark_modules`: each module is timed right after a dense 3x3
convolution of the same width on the same input, so ``ratio_to_conv3x3`` stays comparable on a noisy
machine even when absolute milliseconds are not.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from litevision.bench.complexity import count_complexity
from litevision.bench.timing import fixed_threads, time_calls
from litevision.modules import REF_CHANNELS, REF_SIZE, create_module, get_module_card, list_modules

DEFAULT_LATENCY_JSON = Path("benchmarks/results/modules_cpu.json")
BENCH_BATCH = 8


@dataclass
class ModuleRow:
    name: str
    category: str
    seed_section: int
    params: int | None
    macs: int | None
    latency_ms: float | None  # batch 8, from the benchmark JSON
    ratio_to_conv3x3: float | None
    adapter: str | None
    export: tuple[str, ...]
    min_size: int
    paper: str
    year: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_latency(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """The per-module entries of the benchmark JSON ({} when the file does not exist)."""
    p = Path(path) if path is not None else DEFAULT_LATENCY_JSON
    if not p.is_file():
        return {}
    return json.loads(p.read_text()).get("modules", {})


def module_rows(pattern: str = "*", *, measure: bool = False,
                latency_json: str | os.PathLike[str] | None = None) -> list[ModuleRow]:
    latency = load_latency(latency_json)
    rows = []
    for name in list_modules(pattern):
        card = get_module_card(name)
        params, macs = card.ref_params, card.ref_macs
        if measure:
            c = count_complexity(create_module(name, REF_CHANNELS), (REF_CHANNELS, *REF_SIZE))
            params, macs = c.params, c.macs
        lat = latency.get(name, {})
        rows.append(ModuleRow(name, card.category, card.seed_section, params, macs, lat.get("latency_ms"),
                              lat.get("ratio_to_conv3x3"), card.adapter, tuple(card.export), card.min_size,
                              card.paper, card.year))
    return rows


def _median_ms(fn: Callable[[], object], warmup: int, iters: int) -> float:
    return time_calls(fn, warmup=warmup, iters=iters).median_ms


@torch.inference_mode()
def benchmark_modules(names: Sequence[str] | None = None, *, batch: int = BENCH_BATCH, channels: int = REF_CHANNELS,
                      size: tuple[int, int] = REF_SIZE, threads: int = 1, warmup: int = 3, iters: int = 10,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """CPU latency (median ms per call) of every module at (batch, channels, *size), eval mode.

    Each module is timed right after a dense 3x3 conv (channels -> channels) on the same input, and the
    ratio module / conv is stored next to the milliseconds.
    """
    names = list(names) if names is not None else list_modules()
    x = torch.randn(batch, channels, *size)
    conv = nn.Conv2d(channels, channels, 3, padding=1).eval()
    out: dict[str, Any] = {}
    with fixed_threads(threads):
        for name in names:
            module: nn.Module = create_module(name, channels).eval()
            try:
                conv_ms = _median_ms(lambda: conv(x), warmup, iters)
                ms = _median_ms(lambda module=module: module(x), warmup, iters)
                out[name] = {"latency_ms": round(ms, 3), "conv3x3_ms": round(conv_ms, 3),
                             "ratio_to_conv3x3": round(ms / conv_ms, 3)}
            except Exception as e:  # noqa: BLE001 - a module failing at this size is reported, not fatal
                out[name] = {"latency_ms": None, "error": f"{type(e).__name__}: {e}"}
            if progress:
                progress(f"{name}: {out[name]}")
    return {
        "meta": {"input": [batch, channels, *size], "threads": threads, "iters": iters, "warmup": warmup,
                 "torch": torch.__version__, "machine": platform.machine(), "processor": platform.processor(),
                 "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "note": "median ms per call; ratio_to_conv3x3 = module / dense 3x3 conv timed just before it"},
        "modules": out,
    }
