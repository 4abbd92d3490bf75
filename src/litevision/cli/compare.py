"""``litevision compare MODEL...``: one test set, one input size, one metric code -> one report."""

from __future__ import annotations

import argparse

from litevision.cli._common import (
    SPLITS,
    add_command,
    add_data_options,
    add_input_size,
    add_output,
    add_threshold_arguments,
    check_output_dir,
    parse_key_values,
    square_size,
    threshold_options,
)
from litevision.errors import UserError
from litevision.workflows import compare_models
from litevision.workflows.report import REPORT_FILES, REPORT_FOLDERS

MODEL_HELP = "litevision name, timm:<name>, tv:<name>, or a run folder / weights file of `litevision train`"


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "compare", "one test set, one input size, one metric code: accuracy, per-class recall, "
                                    "params, MACs, latency, throughput, exportability -> Markdown/CSV/JSON/HTML report")
    p.add_argument("models", nargs="+", metavar="MODEL", help=MODEL_HELP)
    add_output(p, "report folder", default="reports/compare")
    p.add_argument("--data", default="fashion_mnist_subset", help="dataset name or image folder")
    add_data_options(p)
    p.add_argument("--split", default="test", choices=SPLITS, help="the split every model is evaluated on")
    add_input_size(p, "one square input side for every model: S (or H W with H = W) pixels")
    p.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                   help="weights for MODEL (repeatable); a litevision weights file must hold that architecture")
    p.add_argument("--train", action="store_true", help="train every MODEL without a checkpoint with --recipe")
    p.add_argument("--recipe", default="quick", help="training recipe for --train")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="recipe override for --train, e.g. sched.epochs=2 (repeatable)")
    p.add_argument("--backend", default="eager", choices=("eager", "channels_last", "ort", "ort_int8"),
                   help="backend for latency / throughput")
    p.add_argument("--ort-latency", action="store_true",
                   help="also time each model's ONNX export in onnxruntime at batch 1 (a second latency column)")
    p.add_argument("--threads", type=int, help="threads for evaluation and timing (default: all usable cores)")
    p.add_argument("--bench-batch", type=int, default=32, help="batch for throughput (images)")
    p.add_argument("--iters", type=int, default=30, help="timed calls at batch 1")
    p.add_argument("--no-export-check", action="store_true", help="skip the ONNX exportability check")
    p.add_argument("--exporter", choices=("dynamo", "legacy"), default="dynamo", help="ONNX exporter")
    add_threshold_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    checkpoints = {}
    for item in args.checkpoint:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--checkpoint {item!r}: use MODEL=PATH")
        checkpoints[name] = path
    check_output_dir(args.output, REPORT_FILES, overwrite=args.overwrite, clear=REPORT_FOLDERS)
    report, paths = compare_models(
        args.models, args.output, data=args.data, data_options=parse_key_values(args.data_opt, "--data-opt") or None,
        split=args.split, input_size=square_size(args.input_size), train=args.train, recipe=args.recipe,
        overrides=args.overrides, checkpoints=checkpoints, threshold=threshold_options(args), backend=args.backend,
        ort_latency=args.ort_latency,
        threads=args.threads, bench_batch=args.bench_batch, iters=args.iters, export_check=not args.no_export_check,
        exporter=args.exporter,
    )
    print(report.markdown())
    print(f"report: {paths['html']} (also {paths['markdown'].name}, {paths['csv'].name}, {paths['json'].name})")
    return 1 if any(r.status != "ok" for r in report.rows) else 0
