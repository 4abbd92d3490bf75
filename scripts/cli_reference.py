"""Regenerate the command-line reference from the parsers: the table in README.md (between the
``<!-- cli:start -->`` / ``<!-- cli:end -->`` markers) and docs/cli.md (every command's ``--help``).

    python scripts/cli_reference.py           # rewrite both
    python scripts/cli_reference.py --check   # exit 1 if either is out of date (tests/test_cli_reference.py)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- cli:start -->", "<!-- cli:end -->"
WIDTH = "100"  # argparse wraps help to $COLUMNS: fixed, so the output does not depend on the terminal


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(full command, parser, one-line help) for every leaf subcommand, in --help order."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                nested = _commands(sub, f"{prefix} {name}")
                out += nested or [(f"{prefix} {name}", sub, helps.get(name) or "")]
    return out


def _synopsis(command: str, parser: argparse.ArgumentParser) -> str:
    parts = [command]
    for action in parser._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            name = action.metavar or action.dest.upper()
            parts.append({"*": f"[{name} ...]", "?": f"[{name}]", "+": f"{name} ..."}.get(action.nargs, name))
        elif action.required:
            parts.append(f"{action.option_strings[0]} {action.metavar or action.dest.upper()}")
    return " ".join(parts) + " [options]"


def render() -> tuple[str, str]:
    """(README table, docs/cli.md) as the parsers describe them now."""
    os.environ["COLUMNS"] = WIDTH
    from litevision.cli.main import build_parser

    parser = build_parser()
    parser.prog = "litevision"
    commands = _commands(parser, "litevision")
    rows = ["| command | what it does |", "|---|---|"]
    for command, sub, text in commands:
        rows.append(f"| `{_synopsis(command, sub)}` | {text} |".replace("||", "\\|\\|"))
    rows.append("| `litevision --version` | the installed version |")
    table = "\n".join(rows)
    pages = ["# Command-line reference", "",
             "Generated from the parsers by `python scripts/cli_reference.py` (a test keeps it current). Every "
             "option's help shows its default; user mistakes exit with code 2 and one message.", ""]
    for command, sub, _ in commands:
        sub.prog = command
        pages += [f"## `{command}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return table, "\n".join(pages)


def main(argv: list[str]) -> int:
    table, page = render()
    readme_path, page_path = REPO / "README.md", REPO / "docs" / "cli.md"
    readme = readme_path.read_text()
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    new_readme = f"{head}{START}\n{table}\n{END}{tail}"
    if "--check" in argv:
        stale = [p.name for p, new in ((readme_path, new_readme), (page_path, page))
                 if not p.is_file() or p.read_text() != new]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    readme_path.write_text(new_readme)
    page_path.write_text(page)
    print(f"wrote {readme_path} and {page_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
