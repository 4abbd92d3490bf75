"""``litevision compare MODEL...``: one test set, one input size, one metric code -> one report."""

from __future__ import annotations

import argparse

from litevision.cli._common import add_threshold_arguments, threshold_options
from litevision.engine.config import parse_override
from litevision.errors import UserError
from litevision.workflows import compare_models

MODEL_HELP = "litevision name, timm:<name>, tv:<name>, or a run folder / weights file of `litevision train`"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="evaluate and benchmark several models the same way into one report")
    p.add_argument("models", nargs="+", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--output", default="reports/compare", help="report folder (default: %(default)s)")
    p.add_argument("--data", default="fashion_mnist_subset", help="dataset name or image folder")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE", help="dataset option (repeatable)")
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--input-size", type=int, help="square input side for every model")
    p.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                   help="weights for MODEL (repeatable)")
    p.add_argument("--train", action="store_true", help="train every MODEL without a checkpoint with --recipe")
    p.add_argument("--recipe", default="quick", help="training recipe for --train (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="recipe override for --train, e.g. sched.epochs=2 (repeatable)")
    p.add_argument("--backend", default="eager", choices=("eager", "channels_last", "ort", "ort_int8"),
                   help="backend for latency/throughput (default: %(default)s)")
    p.add_argument("--threads", type=int, help="threads for evaluation and timing (default: all usable cores)")
    p.add_argument("--bench-batch", type=int, default=32, help="batch for throughput")
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
    options = dict(parse_override(o) for o in args.data_opt) if args.data_opt else None
    threshold = threshold_options(args)
    report, paths = compare_models(
        args.models, args.output, data=args.data, data_options=options, split=args.split, input_size=args.input_size,
        train=args.train, recipe=args.recipe, overrides=args.overrides, checkpoints=checkpoints, threshold=threshold,
        backend=args.backend, threads=args.threads, bench_batch=args.bench_batch, iters=args.iters,
        export_check=not args.no_export_check, exporter=args.exporter,
    )
    print(report.markdown())
    print(f"report: {paths['html']} (also {paths['markdown'].name}, {paths['csv'].name}, {paths['json'].name})")
    return 1 if any(r.status != "ok" for r in report.rows) else 0
