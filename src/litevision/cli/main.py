"""The ``litevision`` command. Argument parsing only: every subcommand calls library functions.

Each module ``litevision/cli/<name>.py`` (not starting with ``_``) defines ``register(subparsers)``,
which adds its subcommand and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from litevision import __version__
from litevision.errors import UserError

_ORDER = ["list", "info", "modules", "train", "eval", "bench", "compare", "export", "ablate", "demo"]


def build_parser() -> argparse.ArgumentParser:
    import litevision.cli as cli_pkg

    parser = argparse.ArgumentParser(
        prog="litevision",
        description="Lightweight vision networks: train, evaluate, compare, benchmark, ablate and export.",
    )
    parser.add_argument("--version", action="version", version=f"litevision {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [m.name for m in pkgutil.iter_modules(cli_pkg.__path__) if not m.name.startswith("_") and m.name != "main"]
    names.sort(key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))
    for name in names:
        importlib.import_module(f"litevision.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
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
