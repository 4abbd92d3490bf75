"""``litevision bench MODEL...``: params, MACs, latency, throughput and memory per backend."""

from __future__ import annotations

import argparse
import logging

from litevision.bench.benchmark import BACKENDS, DEFAULT_BACKENDS, bench_models, write_results
from litevision.cli._common import (
    add_command,
    add_input_size,
    add_output,
    check_output_dir,
    check_output_file,
    format_table,
    parse_input_size,
)
from litevision.errors import UserError

MODEL_HELP = "litevision name, timm:<name>, tv:<name>, or a run folder / weights file of `litevision train`"
log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "bench", "params, MACs, latency, throughput and memory of models and timm:/tv: peers per "
                                  "backend (eager, channels-last, compile, ONNX Runtime fp32 / INT8)")
    p.add_argument("models", nargs="+", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                   help=f"comma-separated, or 'all' ({','.join(BACKENDS)})")
    add_input_size(p)
    p.add_argument("--in-chans", type=int, help="input channels (default: the model card's, 3 for peers)")
    p.add_argument("--num-classes", type=int, help="classes of a model built by name (default: its card's, 1000 for "
                                                   "ImageNet classifiers)")
    p.add_argument("--checkpoint", help="weights to load (one MODEL only)")
    p.add_argument("--batch-size", type=int, default=32, help="batch for throughput (latency is at batch 1)")
    p.add_argument("--threads", type=int, help="intra-op threads for every backend (default: all usable cores)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls before timing")
    p.add_argument("--iters", type=int, default=50, help="timed calls at batch 1")
    p.add_argument("--batch-iters", type=int, default=10, help="timed calls at the throughput batch")
    p.add_argument("--images", help="images to calibrate INT8 with: a folder or a dataset name (default: the "
                                    "bundled Fashion-MNIST subset)")
    p.add_argument("--calibration-images", type=int, default=32, help="how many images calibrate INT8")
    p.add_argument("--no-fuse", action="store_true", help="measure without folding BatchNorm")
    p.add_argument("--exporter", choices=("dynamo", "legacy"), default="dynamo", help="ONNX exporter")
    p.add_argument("--crosscheck", action="store_true", help="also run timm benchmark.py's loop (eager)")
    add_output(p, "results file (.json or .csv: that format) or folder (bench.json and bench.csv)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    backends = BACKENDS if args.backends == "all" else tuple(b.strip() for b in args.backends.split(",") if b.strip())
    if args.checkpoint and len(args.models) > 1:
        raise UserError("--checkpoint needs exactly one MODEL")
    if args.output:
        if args.output.endswith((".json", ".csv")):
            check_output_file(args.output, overwrite=args.overwrite)
        else:
            check_output_dir(args.output, ["bench.json", "bench.csv"], overwrite=args.overwrite)
    results = bench_models(
        args.models, backends=backends, input_size=parse_input_size(args.input_size), in_chans=args.in_chans,
        num_classes=args.num_classes, checkpoint=args.checkpoint, batch_size=args.batch_size, threads=args.threads,
        warmup=args.warmup, iters=args.iters, batch_iters=args.batch_iters, calibration=args.images,
        calibration_images=args.calibration_images, fuse=not args.no_fuse, exporter=args.exporter,
        crosscheck=args.crosscheck,
    )
    rows = []
    for r in results:
        lat = r.latency
        stats = [f"{v:.2f}" for v in (lat.median_ms, lat.p90_ms, lat.min_ms, lat.max_ms)] if lat else ["-"] * 4
        rows.append((
            r.model, r.backend, f"{r.params / 1e6:.2f}M", f"{r.macs / 1e9:.3f}G", *stats,
            f"{r.throughput:.1f}" if r.throughput else "-",
            f"{r.peak_mem_mb:.1f}" if r.peak_mem_mb is not None else "-",
            r.status if r.status == "ok" else f"n/a: {r.reason}",
        ))
    first = results[0]
    print(f"input {'x'.join(map(str, first.input_size))}, {first.threads} thread(s), latency at batch 1 (ms), "
          f"throughput at batch {first.batch_size} (img/s), peak memory = RSS increase of one batch call (MiB)")
    print(format_table(["model", "backend", "params", "MACs", "median", "p90", "min", "max", "img/s", "mem",
                        "status"], rows))
    for r in results:
        if "timm_style" in r.extra:
            t = r.extra["timm_style"]
            ours = r.batch.mean_ms if r.batch else float("nan")
            print(f"cross-check {r.model}: timm benchmark.py loop {t['step_time_ms']:.2f} ms/step "
                  f"({t['samples_per_sec']:.1f} img/s) vs ours {ours:.2f} ms mean / {r.batch.median_ms:.2f} median")
    if args.output:
        for path in write_results(results, args.output):
            print(f"wrote {path}")
    return 0
