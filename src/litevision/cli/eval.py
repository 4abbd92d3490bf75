"""``litevision eval``: evaluate trained weights into their task's reports. Classification: metrics JSON,
per-class CSV, confusion matrix CSV/PNG, and for two classes the threshold report line, a sweep CSV and ROC/PR
plots; hyperspectral: OA / AA / kappa, per-class accuracy and the classification map."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
from litevision.engine import evaluate_checkpoint
from litevision.utils.cpu import keep_freed_memory
from litevision.utils.optional import require

REPORT_FILES = ("metrics.json", "per_class.csv", "confusion_matrix.*", "threshold_sweep.csv", "roc.png", "pr.png",
                "class_map.png", "pr_curves.png", "detections.png")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "eval", "evaluate a checkpoint: its task's report (top-1/5, per-class P/R/F1, confusion matrix, "
        "threshold report; OA/AA/kappa and the class map for hyperspectral runs)",
        "Evaluate a litevision weights file or run folder (model, task and preprocessing are read from it) or "
        "foreign weights with --model, on a dataset split. Reports go to --output.")
    p.add_argument("checkpoint", help="a run folder, a .safetensors written by litevision train, or foreign weights")
    p.add_argument("--data", help="dataset name or image folder (default: the one it was trained on)")
    add_data_options(p)
    p.add_argument("--split", default="test", choices=SPLITS, help="the split to evaluate")
    p.add_argument("--model", help="model name for foreign weights (timm:/tv: peers included)")
    add_input_size(p, "evaluation input side: S (or H W with H = W) pixels")
    p.add_argument("--batch-size", type=int, default=256, help="images per evaluation batch")
    p.add_argument("--workers", type=int, default=0, help="data-loading processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip and count unreadable images (inherited from a run trained with it)")
    add_output(p, "report folder (default: <run>/eval-<split> or <weights>-eval-<split>)")
    p.add_argument("--no-plots", action="store_true", help="write the tables only (no PNG plots)")
    p.add_argument("--json", action="store_true", help="print the metrics JSON instead of the summary")
    add_threshold_arguments(p, with_task=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.no_plots:
        require("matplotlib", "report")
    ckpt = Path(args.checkpoint)
    out = Path(args.output) if args.output else (ckpt / f"eval-{args.split}" if ckpt.is_dir()
                                                 else ckpt.with_name(f"{ckpt.stem}-eval-{args.split}"))
    check_output_dir(out, REPORT_FILES, overwrite=args.overwrite)
    keep_freed_memory()  # this process only evaluates: large batches reuse the heap (see run.keep_memory)
    report = evaluate_checkpoint(
        args.checkpoint, data=args.data, data_options=parse_key_values(args.data_opt, "--data-opt") or None,
        split=args.split, model_name=args.model, input_size=square_size(args.input_size),
        threshold=threshold_options(args), device=args.device, batch_size=args.batch_size, workers=args.workers,
        skip_bad=args.skip_bad, progress=True, out_dir=out, plots=not args.no_plots)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
        print(f"reports: {', '.join(str(p) for p in sorted(out.iterdir()))}")
    return 0
