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
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import torch


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


def time_interleaved(fns: Mapping[str, Callable[[], object]], *, rounds: int, per_round: int = 1,
                     warmup: int = 2) -> dict[str, TimingStats]:
    """Time several candidates alike on a machine other processes also use.

    After ``warmup`` untimed calls each, ``rounds`` rounds run every candidate ``per_round`` times (each call
    timed), the first candidate of a round rotating, so a burst of outside load hits all of them alike.
    Compare medians (typical) or minima (least disturbed); ratios are only meaningful within one call.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            for _ in range(per_round):
                start = time.perf_counter()
                fns[name]()
                samples[name].append(time.perf_counter() - start)
    return {n: TimingStats.from_seconds(v) for n, v in samples.items()}


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
