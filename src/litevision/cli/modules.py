"""``litevision modules [PATTERN]``: the plug-in modules with category, params, MACs and CPU latency."""

from __future__ import annotations

import argparse
import json

from litevision.bench.module_table import module_rows
from litevision.cli._common import add_command, format_table
from litevision.errors import UserError
from litevision.modules import get_module_card, list_modules


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "modules", "list plug-in modules: category, params/MACs at 1x64x56x56, CPU latency at 8x64x56x56",
        "Plug-in modules (seed 004). Params and MACs: create_module(name, 64) on one 64x56x56 map. "
        "Latency: median ms at 8x64x56x56 from benchmarks/results/modules_cpu.json (python "
        "benchmarks/modules_cpu.py), with the ratio to a dense 3x3 conv timed alongside.")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern (default: all)")
    p.add_argument("--card", action="store_true", help="print each matching module's full card")
    p.add_argument("--measure", action="store_true", help="measure params/MACs now instead of reading the cards")
    p.add_argument("--latency-json", help="benchmark JSON (default: benchmarks/results/modules_cpu.json)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def run(args: argparse.Namespace) -> int:
    if not any(ch in args.pattern for ch in "*?[") and args.pattern not in list_modules():
        get_module_card(args.pattern)  # unknown name: raises with close names
    rows = module_rows(args.pattern, measure=args.measure, latency_json=args.latency_json)
    if not rows:
        raise UserError(f"no module matches {args.pattern!r}")
    if args.card:
        for r in rows:
            print(f"{r.name}\n" + "\n".join(f"  {k}: {v}" for k, v in get_module_card(r.name).to_dict().items()))
        return 0
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    headers = ["module", "category", "sec", "params", "MACs", "ms@8", "x conv3x3", "adapter", "export", "paper"]
    table = [(r.name, r.category, r.seed_section, _count(r.params), _count(r.macs),
              "-" if r.latency_ms is None else f"{r.latency_ms:.2f}",
              "-" if r.ratio_to_conv3x3 is None else f"{r.ratio_to_conv3x3:.2f}", r.adapter or "-",
              ",".join(r.export) or "-", f"{r.paper[:48]} ({r.year})") for r in rows]
    print(format_table(headers, table))
    if all(r.latency_ms is None for r in rows):
        print("(no latency: run `python benchmarks/modules_cpu.py` to write benchmarks/results/modules_cpu.json)")
    return 0
