"""``litevision list [PATTERN]``: registered model names."""

from __future__ import annotations

import argparse

from litevision.cli._common import add_command
from litevision.cli.info import print_table
from litevision.models import list_models


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "list", "list registered models (fnmatch PATTERN, e.g. 'mobilenet*')")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern over the names, e.g. 'lsnet*'")
    p.add_argument("--family", help="only this family (e.g. mobilenetv3, lsnet)")
    p.add_argument("--task", choices=("classification", "detection"), help="only classifiers or only detectors")
    p.add_argument("--info", action="store_true", help="also measure params/MACs (same as `info`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, family=args.family, task=args.task)
    if args.info:
        print_table(names)
    else:
        print("\n".join(names))
    return 0 if names else 1
