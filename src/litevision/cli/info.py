"""``litevision info NAME|--all``: measured params and MACs next to the paper's figures."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from litevision.bench.model_table import measure_model
from litevision.cli._common import add_command
from litevision.errors import UserError
from litevision.models import get_model_card, list_models


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "info", "model card: measured params / MACs next to the paper's, difference in %")
    p.add_argument("names", nargs="*", metavar="NAME", help="model names or fnmatch patterns")
    p.add_argument("--all", action="store_true", help="every registered model")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(names: Sequence[str], as_json: bool = False) -> None:
    """Print one row per model as soon as it is measured (JSON: one list at the end)."""
    headers = ["model", "input", "params", "paper", "diff%", "MACs", "paper", "diff%", "top-1"]
    widths = [max(22, max((len(n) for n in names), default=0)), 7, 8, 6, 6, 8, 6, 6, 5]
    rows = []
    if not as_json:
        print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
        print("  ".join("-" * w for w in widths))
    for n in names:
        r = measure_model(n)
        rows.append(r)
        if as_json:
            continue
        cells = (r.name, "x".join(map(str, r.input_size[1:])), f"{r.params_m:.2f}M", _fmt(r.paper_params_m, ".2f"),
                 _fmt(r.params_diff_pct, "+.1f"), f"{r.macs_g:.3f}G", _fmt(r.paper_macs_g, ".3f"),
                 _fmt(r.macs_diff_pct, "+.1f"), _fmt(r.paper_top1, ".1f"))
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))),
              flush=True)
    if as_json:
        print(json.dumps([{**r.__dict__, "params_diff_pct": r.params_diff_pct, "macs_diff_pct": r.macs_diff_pct}
                          for r in rows], indent=2))


def run(args: argparse.Namespace) -> int:
    if args.all:
        names = list_models()
    else:
        if not args.names:
            raise UserError("give a model NAME (or a pattern) or --all")
        names = []
        for n in args.names:
            matched = list_models(n) if any(ch in n for ch in "*?[") else [n]
            for m in matched:
                get_model_card(m)  # raises with suggestions for an unknown name
            names += matched
    if len(names) == 1 and not args.json:
        card = get_model_card(names[0])
        print(f"{names[0]}: {card.paper.title} ({card.paper.venue})")
        if card.notes:
            print(f"notes: {card.notes}")
    print_table(names, as_json=args.json)
    return 0
