"""The ``litevision`` command. Argument parsing only: every subcommand calls library functions.

Each module ``litevision/cli/<name>.py`` defines ``register(subparsers)``, which adds its subcommand and sets
``func(args) -> int``; :data:`COMMANDS` lists them in the order ``--help`` shows. Library messages go through
``logging`` (logger ``litevision``); this is where they get a handler: one line each on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from litevision.cli import ablate, bench, compare, demo, export, hsi, info, modules, predict, prune, train
from litevision.cli import eval as eval_cmd
from litevision.cli import list as list_cmd
from litevision.errors import UserError
from litevision.version import __version__

COMMANDS = (list_cmd, info, modules, train, eval_cmd, predict, bench, compare, export, prune, ablate, demo, hsi)


def configure_logging(level: int = logging.INFO) -> None:
    """Library messages (progress, notes) as plain lines on stderr; results stay on stdout."""
    logger = logging.getLogger("litevision")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


class Parser(argparse.ArgumentParser):
    """Usage mistakes (an unknown option, a bad choice) as one line, like every other user mistake."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="litevision",
        description="Lightweight vision networks: train, evaluate, compare, benchmark, ablate and export.",
    )
    parser.add_argument("--version", action="version", version=f"litevision {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging()
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"litevision {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"litevision {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
