"""``litevision list [PATTERN]``: registered model names."""

from __future__ import annotations

import argparse

from litevision.cli.info import print_table
from litevision.models import list_models


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models (fnmatch PATTERN, e.g. 'mobilenet*')")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--info", action="store_true", help="also measure params/MACs (same as `info`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if args.info:
        print_table(names)
    else:
        print("\n".join(names))
    return 0 if names else 1
