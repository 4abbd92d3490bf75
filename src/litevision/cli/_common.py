"""What every subcommand shares: one help format (defaults and units shown), one form for each common option
(``--output``, ``--overwrite``, ``--input-size``, ``--data-opt``, ``--split``, the threshold report), output
checks made before any work starts, and tables."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from litevision.engine import ThresholdOptions
from litevision.errors import UserError

SPLITS = ("train", "val", "test")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default in its help, unless there is none to show (None, False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def add_command(sub: argparse._SubParsersAction, name: str, help: str, description: str | None = None
                ) -> argparse.ArgumentParser:
    """A subcommand parser with the shared help format."""
    return sub.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)


def add_output(parser: argparse.ArgumentParser, help: str, *, default: str | None = None,
               required: bool = False) -> None:
    """``--output`` (``--out`` is accepted as an old spelling) and ``--overwrite``."""
    parser.add_argument("--output", "--out", dest="output", default=default, required=required, metavar="PATH",
                        help=help)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files a previous run of this command wrote there (refused otherwise)")


def add_input_size(parser: argparse.ArgumentParser, help: str = "model input: S (square), H W or C H W pixels"
                   ) -> None:
    parser.add_argument("--input-size", type=int, nargs="+", metavar="N", help=help + " (default: the model card's)")


def parse_input_size(values: Sequence[int] | None, *, channels: bool = True) -> tuple[int, ...] | None:
    """``S`` -> (S, S); ``H W``; ``C H W`` where ``channels``. Sizes must be positive."""
    if not values:
        return None
    if any(v < 1 for v in values):
        raise UserError(f"--input-size {' '.join(map(str, values))}: sizes must be positive")
    if len(values) == 1:
        return (values[0], values[0])
    if len(values) == 2 or (len(values) == 3 and channels):
        return tuple(values)
    raise UserError(f"--input-size takes S or H W{' or C H W' if channels else ''}, got {len(values)} numbers")


def square_size(values: Sequence[int] | None) -> int | None:
    """An input size that must be square (``S`` or ``H W`` with H = W) as one number."""
    size = parse_input_size(values, channels=False)
    if size is None:
        return None
    if size[0] != size[1]:
        raise UserError(f"--input-size {size[0]} {size[1]}: this command compares at one square size; give S")
    return size[0]


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="a dataset option, value parsed as YAML, e.g. --data-opt split=disjoint (repeatable)")


def parse_key_values(items: Iterable[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings with YAML values, as given to ``option``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as e:
            raise UserError(f"{option} {item!r}: cannot parse the value: {str(e).splitlines()[0]}") from None
    return out


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


# ---------------------------------------------------------------------------------------------------------
# outputs, checked before any work


def check_output_file(path: str | Path, *, overwrite: bool) -> Path:
    """A file this command will write: refused if it exists (unless ``overwrite``) or its folder is a file."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"--output {p} is a folder; give a file name (or a new folder for both formats)")
    if p.exists() and not overwrite:
        raise UserError(f"--output {p} exists; pass --overwrite to replace it")
    _check_parent(p)
    return p


def check_output_dir(path: str | Path, files: Iterable[str], *, overwrite: bool,
                     clear: Iterable[str] = ()) -> Path:
    """A folder this command writes ``files`` into (names or glob patterns): refused if the path is a file, or if
    one of the files is already there (unless ``overwrite``; then the sub-folders in ``clear``, left by the
    previous run of the command, are removed so no stale entry survives)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"--output {p} is a file, not a folder")
    _check_parent(p)
    if p.is_dir():
        found = sorted({q.name for pattern in files for q in p.glob(pattern)})
        if found and not overwrite:
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            raise UserError(f"--output {p} already holds {', '.join(found[:3])}{more}; pass --overwrite to replace "
                            "them, or choose another folder")
        if found:
            for name in clear:
                shutil.rmtree(p / name, ignore_errors=True)
    return p


def _check_parent(p: Path) -> None:
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--output {p}: {parent} is a file, not a folder")
            return


# ---------------------------------------------------------------------------------------------------------
# tables


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
