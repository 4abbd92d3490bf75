"""``litevision train``: a YAML recipe plus ``--set`` overrides -> a run folder (see docs/training.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from litevision.cli._common import add_command, add_data_options, parse_key_values
from litevision.data import DATASETS
from litevision.engine import list_recipes, load_config, resume, train
from litevision.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "train", "train from a YAML recipe (--list-recipes) with --set overrides: one trainer for every task "
        "(classification, hyperspectral), exact resume (--resume), DDP under torchrun",
        "Train a model. RECIPE is a YAML path or a recipe name (litevision train --list-recipes); "
        "--set section.key=value overrides any field. Run with torchrun --nproc_per_node N for DDP.",
    )
    p.add_argument("recipe", nargs="?", help="recipe name (e.g. quick, lsnet/lsnet_t) or a YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--model", help="shortcut for --set model.name=...")
    p.add_argument("--data", help="shortcut for --set data.name=... (a dataset name or an image folder)")
    add_data_options(p)
    p.add_argument("--epochs", type=int, help="shortcut for --set sched.epochs=...")
    p.add_argument("--batch-size", type=int, help="shortcut for --set data.batch_size=...")
    p.add_argument("--output", help="shortcut for --set run.output=... (the folder that holds run folders)")
    p.add_argument("--name", help="shortcut for --set run.name=... (the run folder's name)")
    p.add_argument("--seed", type=int, help="shortcut for --set run.seed=...")
    p.add_argument("--device", help="shortcut for --set run.device=... (auto, cpu, cuda, cuda:N)")
    p.add_argument("--skip-bad", action="store_true", help="skip and count unreadable images instead of stopping")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--list-recipes", action="store_true", help="list the recipe names and exit")
    p.add_argument("--list-data", action="store_true", help="list the registered datasets and exit")
    p.set_defaults(func=run)


def _shortcuts(args: argparse.Namespace) -> list[str]:
    pairs = [("model.name", args.model), ("data.name", args.data), ("sched.epochs", args.epochs),
             ("data.batch_size", args.batch_size), ("run.output", args.output), ("run.name", args.name),
             ("run.device", args.device), ("run.seed", args.seed), ("data.skip_bad", True if args.skip_bad else None)]
    options = [f"data.options.{k}={json.dumps(v)}" for k, v in parse_key_values(args.data_opt, "--data-opt").items()]
    return [f"{k}={v}" for k, v in pairs if v is not None] + options


def run(args: argparse.Namespace) -> int:
    if args.list_recipes:
        print("\n".join(list_recipes()))
        return 0
    if args.list_data:
        for name in DATASETS:
            print(f"{name:24s} {DATASETS.get(name).meta}")
        return 0
    overrides = _shortcuts(args) + list(args.overrides)
    if args.resume:
        if args.recipe:
            raise UserError("--resume continues a run with its saved config; do not pass a recipe too")
        if args.print_config:
            print(yaml.safe_dump(load_config(Path(args.resume) / "config.yaml", overrides).to_dict(), sort_keys=False))
            return 0
        resume(args.resume, overrides)
        return 0
    cfg = load_config(args.recipe, overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    train(cfg)
    return 0
