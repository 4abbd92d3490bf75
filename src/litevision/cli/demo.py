"""``litevision demo``: what ``make demo`` runs - train five models briefly on the bundled Fashion-MNIST
subset and compare them (accuracy, per-class recall, params, MACs, latency, throughput, exportability)."""

from __future__ import annotations

import argparse
import time

from litevision.cli._common import add_command, check_output_dir
from litevision.workflows import DEMO_MODELS, run_demo
from litevision.workflows.report import REPORT_FILES, REPORT_FOLDERS


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "demo", "what `make demo` runs: lcnet_t, lsnet_t, mobilenetv3_small_100, shufflenetv2_100 and "
                                 "a timm peer trained briefly on the bundled data and compared (minutes on a CPU)")
    p.add_argument("--output", "--out", dest="output", default="reports/demo", metavar="PATH",
                   help="report folder; the demo replaces the report it wrote there before")
    p.add_argument("--models", nargs="+", metavar="MODEL", help="replace the demo's model list")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="training-recipe override on top of the demo's, e.g. run.max_steps=200 (repeatable)")
    p.add_argument("--threads", type=int, help="threads for evaluation and timing (default: all usable cores)")
    p.add_argument("--exporter", choices=("dynamo", "legacy"), default="legacy",
                   help="ONNX exporter of the exportability check (legacy is 7-14x faster to run than dynamo; "
                        "`litevision export` uses dynamo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.output, REPORT_FILES, overwrite=True, clear=REPORT_FOLDERS)
    start = time.perf_counter()
    report, paths = run_demo(args.output, models=args.models or DEMO_MODELS, overrides=args.overrides,
                             threads=args.threads, exporter=args.exporter)
    print()
    print(report.markdown())
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    print(f"report: {paths['html'].resolve()}")
    print(f"        {paths['markdown'].resolve()} (also compare.csv, compare.json, plots)")
    return 1 if any(r.status != "ok" for r in report.rows) else 0
