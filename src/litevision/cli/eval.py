"""``litevision eval``: evaluate trained weights into reports (metrics JSON, per-class CSV, confusion
matrix CSV/PNG; for two classes the threshold report line, a sweep CSV and ROC/PR plots)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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
    t = p.add_argument_group("two-class threshold report")
    t.add_argument("--threshold-mode", default="fixed", choices=["fixed", "balanced", "recall"],
                   help="fixed: --threshold; balanced: best balanced accuracy; recall: keep --recall-class at "
                   "--target-recall")
    t.add_argument("--threshold", type=float, default=0.5, help="threshold on the positive class probability")
    t.add_argument("--positive-class", help="name or index of the positive class (default: index 1)")
    t.add_argument("--target-recall", type=float, help="target recall, percent or fraction (mode recall)")
    t.add_argument("--recall-class", help="class whose recall is held at the target (default: positive)")
    t.add_argument("--task", help="task name in the report line (default: the dataset name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from litevision.engine.config import parse_override
    from litevision.engine.evaluate import ThresholdOptions, evaluate_checkpoint

    options = dict(parse_override(o) for o in args.data_opt) if args.data_opt else None
    opts = ThresholdOptions(mode=args.threshold_mode, threshold=args.threshold, positive_class=args.positive_class,
                            target_recall=args.target_recall, recall_class=args.recall_class, task=args.task)
    report = evaluate_checkpoint(args.checkpoint, data=args.data, data_options=options, split=args.split,
                                 model_name=args.model, input_size=args.input_size, threshold=opts, device=args.device,
                                 batch_size=args.batch_size, workers=args.workers, skip_bad=args.skip_bad,
                                 progress=True)
    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else (ckpt / f"eval-{args.split}" if ckpt.is_dir()
                                           else ckpt.with_name(f"{ckpt.stem}-eval-{args.split}"))
    paths = report.save(out, plots=not args.no_plots)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
        print(f"reports: {', '.join(str(p) for p in paths.values())}")
    return 0
