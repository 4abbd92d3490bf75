"""``litevision demo``: what ``make demo`` runs."""

from __future__ import annotations

import argparse

from litevision.cli.info import print_table
from litevision.models import list_models


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job on the bundled data (currently: the model table)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print_table(list_models())
    return 0
