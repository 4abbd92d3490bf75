"""Helpers shared by subcommands: tables, output, and the argument groups several commands take."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from litevision.engine import ThresholdOptions


def add_threshold_arguments(parser: argparse.ArgumentParser, *, with_task: bool = False) -> None:
    """The two-class threshold report's options (``litevision eval`` and ``compare``)."""
    t = parser.add_argument_group("two-class threshold report")
    t.add_argument("--threshold-mode", default="fixed", choices=["fixed", "balanced", "recall"],
                   help="fixed: --threshold; balanced: best balanced accuracy; recall: keep --recall-class at "
                   "--target-recall")
    t.add_argument("--threshold", type=float, default=0.5, help="threshold on the positive class probability")
    t.add_argument("--positive-class", help="name or index of the positive class (default: index 1)")
    t.add_argument("--target-recall", type=float, help="target recall, percent or fraction (mode recall)")
    t.add_argument("--recall-class", help="class whose recall is held at the target (default: positive)")
    if with_task:
        t.add_argument("--task", help="the name in the report line, e.g. QA_dirt (default: the dataset name)")


def threshold_options(args: argparse.Namespace) -> ThresholdOptions | None:
    """The threshold settings given on the command line (None when all are at their defaults)."""
    opts = ThresholdOptions(mode=args.threshold_mode, threshold=args.threshold, positive_class=args.positive_class,
                            target_recall=args.target_recall, recall_class=args.recall_class,
                            task=getattr(args, "task", None))
    return None if opts == ThresholdOptions() else opts


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with right-aligned numbers."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(row, widths)).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def _numeric(v: str) -> bool:
    try:
        float(v.rstrip("%MG").replace("+", ""))
        return True
    except ValueError:
        return False
