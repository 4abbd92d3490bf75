"""CPU latency of the classic zoo against the same architectures in torchvision / timm, with identical weights.

For each model: build the reference (random weights), load its state dict into ours with
``lv.load_checkpoint`` (so both compute the same function, checked before timing), then time both in eval
mode under ``torch.inference_mode`` with a fixed thread count, for eager NCHW and channels-last, at batch 1
and batch 32. Calls of ours and of the reference are interleaved (alternating which goes first) so that load
from other processes on a shared machine hits both alike. Reported per case: median / min / max ms of each
and ``ratio = reference median / our median`` (>= 1: ours is faster; >= 0.95 counts as "not slower").

    python benchmarks/zoo_cpu.py                       # all pairs, writes benchmarks/results/zoo_cpu.json
    python benchmarks/zoo_cpu.py --quick --models mobilenetv2_100 shufflenetv2_100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

import litevision as lv
from litevision.bench.timing import TimingStats, fixed_threads
from litevision.utils.cpu import cpu_description, cpu_ticks, foreign_cpus

# our model -> (reference, overrides for ours to follow the reference's conventions)
PAIRS: dict[str, tuple[str, dict]] = {
    "mobilenetv1_100": ("timm:mobilenetv1_100", {}),
    "mobilenetv2_100": ("tv:mobilenet_v2", {}),
    "mobilenetv3_large_100": ("tv:mobilenet_v3_large", {}),
    "mobilenetv3_small_100": ("tv:mobilenet_v3_small", {}),
    "shufflenetv2_050": ("tv:shufflenet_v2_x0_5", {}),
    "shufflenetv2_100": ("tv:shufflenet_v2_x1_0", {}),
    "shufflenetv2_150": ("tv:shufflenet_v2_x1_5", {}),
    "shufflenetv2_200": ("tv:shufflenet_v2_x2_0", {}),
    "efficientnet_b0": ("tv:efficientnet_b0", {}),
    "efficientnet_b1": ("tv:efficientnet_b1", {}),
    "efficientnet_b2": ("tv:efficientnet_b2", {}),
    "efficientnet_b3": ("tv:efficientnet_b3", {}),
}
QUICK_MODELS = ("mobilenetv2_100", "mobilenetv3_large_100", "shufflenetv2_100", "efficientnet_b0")
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def build_reference(spec: str) -> nn.Module:
    source, name = spec.split(":", 1)
    if source == "tv":
        import torchvision

        return getattr(torchvision.models, name)(weights=None)
    import timm

    return timm.create_model(name, pretrained=False)


def paired_models(name: str) -> tuple[nn.Module, nn.Module]:
    ref_spec, overrides = PAIRS[name]
    ref = build_reference(ref_spec).eval()
    ours = lv.create_model(name, **overrides).eval()
    lv.load_checkpoint(ours, ref.state_dict())
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        expected, got = ref(x), ours(x)
    diff = ((got - expected).abs().max() / expected.abs().max()).item()
    if diff > 1e-4:
        raise RuntimeError(f"{name}: outputs differ from {ref_spec} (relative max diff {diff:.2e})")
    return ours, ref


def time_interleaved(fns: list[Callable[[], object]], warmup: int, runs: int) -> list[tuple[TimingStats, float]]:
    """Time each function ``runs`` times, alternating the order every round.

    Returns per function the wall-clock statistics and the median process CPU time in ms (all threads): on a
    machine shared with other jobs, CPU time shows the work done even when wall time shows mostly waiting.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for r in range(runs):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[i]()
            wall[i].append(time.perf_counter() - start)
            cpu[i].append(time.process_time() - start_cpu)
    return [(TimingStats.from_seconds(w), 1e3 * statistics.median(c)) for w, c in zip(wall, cpu)]


def bench_pair(name: str, batches: tuple[int, ...], warmup: int, runs: int, size: int | None) -> list[dict]:
    ours, ref = paired_models(name)
    card = lv.get_model_card(name)
    hw = (size, size) if size else card.input_size[1:]
    rows = []
    for layout, fmt in LAYOUTS.items():
        ours, ref = ours.to(memory_format=fmt), ref.to(memory_format=fmt)
        for batch in batches:
            x = torch.randn(batch, 3, *hw).to(memory_format=fmt)
            ticks, started = cpu_ticks(), time.perf_counter()
            with torch.inference_mode():
                (stats_ours, cpu_ours), (stats_ref, cpu_ref) = time_interleaved(
                    [partial(ours, x), partial(ref, x)], warmup, runs)
            foreign = foreign_cpus(ticks, cpu_ticks(), time.perf_counter() - started)
            rows.append({
                "model": name, "reference": PAIRS[name][0], "layout": layout, "batch": batch,
                "input_size": [3, *hw],
                "ours_ms": {**_summary(stats_ours), "cpu_median": round(cpu_ours, 3)},
                "ref_ms": {**_summary(stats_ref), "cpu_median": round(cpu_ref, 3)},
                "ratio": round(stats_ref.median_ms / stats_ours.median_ms, 3),
                "ratio_min": round(stats_ref.min_ms / stats_ours.min_ms, 3),
                "ratio_cpu": round(cpu_ref / cpu_ours, 3),
                "foreign_cpus": None if foreign is None else round(foreign, 2),  # other processes, same time
            })
            print(_format_row(rows[-1]), flush=True)
    return rows


def _summary(stats: TimingStats) -> dict[str, float]:
    return {"median": round(stats.median_ms, 3), "min": round(stats.min_ms, 3), "max": round(stats.max_ms, 3)}


def _format_row(row: dict) -> str:
    o, r = row["ours_ms"], row["ref_ms"]
    cells = [row["model"], row["reference"], row["layout"], str(row["batch"]),
             f"{o['median']:.2f} ({o['min']:.2f}-{o['max']:.2f})", f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})",
             f"{row['ratio']:.2f}", f"{row['ratio_min']:.2f}", f"{row['ratio_cpu']:.2f}"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(PAIRS), help="default: all (--quick: a subset)")
    parser.add_argument("--quick", action="store_true", help="4 models, 2 warm-up and 5 timed runs per case")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--runs", type=int, help="timed runs per case (default 10, --quick 5; at least 5)")
    parser.add_argument("--warmup", type=int, help="untimed runs per case (default 3, --quick 2)")
    parser.add_argument("--size", type=int, help="square input size (default: the model card's)")
    parser.add_argument("--output", default="benchmarks/results/zoo_cpu.json")
    args = parser.parse_args(argv)
    models = args.models or (list(QUICK_MODELS) if args.quick else list(PAIRS))
    runs = args.runs or (5 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 3)
    if runs < 5:
        parser.error("--runs must be at least 5")

    torch.manual_seed(0)
    load_before = list(os.getloadavg())
    print("| model | reference | layout | batch | ours ms median (min-max) | ref ms median (min-max) "
          "| ratio | ratio of mins | ratio of CPU times |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    with fixed_threads(args.threads):
        for name in models:
            rows.extend(bench_pair(name, tuple(args.batches), warmup, runs, args.size))
    slower = [r for r in rows if r["ratio"] < 0.95]
    result = {
        "meta": {
            "torch": torch.__version__, "python": platform.python_version(), "machine": cpu_description(),
            "processor": platform.processor(), "threads": args.threads, "runs": runs, "warmup": warmup,
            "quick": args.quick, "ratio": "reference median / our median (>= 0.95: ours is not slower)",
            "ratio_cpu": "reference / our median process CPU time (robust to other jobs on the machine)",
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(),
            "load_average_1_5_15_before": load_before, "load_average_1_5_15_after": list(os.getloadavg()),
        },
        "results": rows,
        "slower_than_reference": [f"{r['model']} {r['layout']} b{r['batch']}: {r['ratio']}" for r in slower],
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}; {len(slower)} of {len(rows)} cases with ratio < 0.95")
    return 0


if __name__ == "__main__":
    sys.exit(main())
