"""Timing primitives: per-call latency statistics, timm's benchmark loop, a fixed thread count.

:func:`time_calls` times every call separately with ``time.perf_counter`` after a warm-up and reports
min / median / p90 / max / mean, so noise on a shared machine is visible instead of averaged away.
:func:`timm_style_throughput` replicates the inference loop of timm's ``benchmark.py``
(``InferenceBenchmarkRunner.run``): warm-up steps, then ``perf_counter`` around the whole run of N steps,
``samples_per_sec = samples / elapsed`` and ``step_time = sum(step times) / N``. It exists to cross-check
our numbers against that widely used method.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import torch

from litevision.utils.cpu import cpu_ticks, foreign_cpus


@dataclass(frozen=True)
class TimingStats:
    """Milliseconds per call over ``iters`` timed calls."""

    iters: int
    min_ms: float
    median_ms: float
    p90_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def from_seconds(cls, samples: list[float]) -> TimingStats:
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        return cls(len(ms), float(ms.min()), float(np.median(ms)), float(np.percentile(ms, 90)), float(ms.max()),
                   float(ms.mean()))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def time_calls(fn: Callable[[], object], *, warmup: int = 10, iters: int = 50) -> TimingStats:
    """Call ``fn`` ``warmup`` times untimed, then ``iters`` times, timing each call."""
    if iters < 1:
        raise ValueError("iters must be >= 1")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return TimingStats.from_seconds(samples)


class InterleavedStats(dict):
    """``{candidate: TimingStats}`` of :func:`time_interleaved`, plus ``load``: what other processes did."""

    load: dict


def time_interleaved(fns: Mapping[str, Callable[[], object]], *, rounds: int, per_round: int = 1,
                     warmup: int = 2, max_foreign_cpus: float = 0.5) -> InterleavedStats:
    """Time several candidates alike on a machine other processes also use.

    After ``warmup`` untimed calls each, ``rounds`` rounds run every candidate ``per_round`` times (each call
    timed), the first candidate of a round rotating, so a burst of outside load hits all of them alike.
    Compare medians (typical) or minima (least disturbed); ratios are only meaningful within one call.

    Each round also measures the CPUs other processes kept busy meanwhile (``/proc/stat`` minus this
    process); rounds above ``max_foreign_cpus`` are left out of the statistics when at least half the rounds
    are clean. ``result.load`` records the load average before and after, every round's foreign CPUs, the
    rounds left out and ``trusted`` (False when most rounds ran under load: the numbers measure the
    neighbours as much as the candidates, and should not be committed).
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    samples: dict[str, list[list[float]]] = {n: [] for n in names}
    foreign: list[float | None] = []
    load_start = _loadavg()
    for r in range(rounds):
        ticks, start_round = cpu_ticks(), time.perf_counter()
        for name in names[r % len(names):] + names[:r % len(names)]:
            calls = []
            for _ in range(per_round):
                start = time.perf_counter()
                fns[name]()
                calls.append(time.perf_counter() - start)
            samples[name].append(calls)
        foreign.append(foreign_cpus(ticks, cpu_ticks(), time.perf_counter() - start_round))
    loaded = [i for i, f in enumerate(foreign) if f is not None and f > max_foreign_cpus]
    trusted = len(loaded) * 2 <= rounds
    keep = [i for i in range(rounds) if not (trusted and i in loaded)]
    out = InterleavedStats({n: TimingStats.from_seconds([t for i in keep for t in v[i]]) for n, v in samples.items()})
    out.load = {"loadavg_start": load_start, "loadavg_end": _loadavg(), "max_foreign_cpus": max_foreign_cpus,
                "foreign_cpus_per_round": [None if f is None else round(f, 2) for f in foreign],
                "rounds_left_out": loaded if trusted else [], "trusted": trusted}
    return out


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def timm_style_throughput(fn: Callable[[], object], batch_size: int, *, warmup: int = 10,
                          iters: int = 40) -> dict[str, float]:
    """timm ``benchmark.py`` inference loop on CPU: ``{"samples_per_sec", "step_time_ms"}``."""
    for _ in range(warmup):
        fn()
    total_step = 0.0
    num_samples = 0
    run_start = time.perf_counter()
    for _ in range(iters):
        step_start = time.perf_counter()
        fn()
        total_step += time.perf_counter() - step_start
        num_samples += batch_size
    elapsed = time.perf_counter() - run_start
    return {"samples_per_sec": num_samples / elapsed, "step_time_ms": 1e3 * total_step / iters}


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run torch's intra-op pool with exactly ``threads`` threads; restore the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def summarize_loads(loads: list[dict]) -> dict:
    """One record for a benchmark run from the ``load`` of each :func:`time_interleaved` call: a run with any
    untrusted group was taken under load and its figures should not be committed."""
    averages = [v for load in loads for v in (load["loadavg_start"], load["loadavg_end"]) if v is not None]
    foreign = [f for load in loads for f in load["foreign_cpus_per_round"] if f is not None]
    return {"groups": len(loads), "untrusted_groups": sum(not load["trusted"] for load in loads),
            "rounds": len(foreign), "rounds_left_out": sum(len(load["rounds_left_out"]) for load in loads),
            "max_loadavg": max(averages, default=None), "median_foreign_cpus": float(np.median(foreign)) if foreign
            else None, "trusted": all(load["trusted"] for load in loads)}
