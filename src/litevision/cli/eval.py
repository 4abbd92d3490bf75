"""``litevision eval``: evaluate trained weights into their task's reports. Classification: metrics JSON,
per-class CSV, confusion matrix CSV/PNG, and for two classes the threshold report line, a sweep CSV and ROC/PR
plots; hyperspectral: OA / AA / kappa, per-class accuracy and the classification map."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from litevision.cli._common import add_threshold_arguments, threshold_options
from litevision.engine import evaluate_checkpoint
from litevision.engine.config import parse_override
from litevision.utils.optional import require


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint: top-1/5, per-class P/R/F1, confusion matrix, threshold report",
        description="Evaluate a litevision weights file or run folder (model and preprocessing are read from it) "
        "or foreign weights with --model, on a dataset split. Reports go to --out.",
    )
    p.add_argument("checkpoint", help="a run folder, a .safetensors written by litevision train, or foreign weights")
    p.add_argument("--data", help="dataset name or image folder (default: the one it was trained on)")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE", help="dataset option (repeatable)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--model", help="model name for foreign weights (timm:/tv: peers included)")
    p.add_argument("--input-size", type=int, help="override the input size")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-bad", action="store_true", help="skip and count unreadable images")
    p.add_argument("--out", help="report folder (default: <run>/eval-<split> or <weights>-eval-<split>)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--json", action="store_true", help="print the metrics JSON instead of the summary")
    add_threshold_arguments(p, with_task=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.no_plots:
        require("matplotlib", "report")
    options = dict(parse_override(o) for o in args.data_opt) if args.data_opt else None
    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else (ckpt / f"eval-{args.split}" if ckpt.is_dir()
                                           else ckpt.with_name(f"{ckpt.stem}-eval-{args.split}"))
    report = evaluate_checkpoint(args.checkpoint, data=args.data, data_options=options, split=args.split,
                                 model_name=args.model, input_size=args.input_size, threshold=threshold_options(args),
                                 device=args.device, batch_size=args.batch_size, workers=args.workers,
                                 skip_bad=args.skip_bad, progress=True, out_dir=out, plots=not args.no_plots)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
        print(f"reports: {', '.join(str(p) for p in sorted(out.iterdir()))}")
    return 0
