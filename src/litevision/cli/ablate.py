"""``litevision ablate --model M --module X --where W --data D``: the model with and without a plug-in module,
same recipe and seed; prints the deltas (params, MACs, latency, accuracy). Logic: litevision.workflows.ablate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from litevision.cli._common import add_command, add_data_options, add_output, check_output_dir, parse_key_values
from litevision.workflows.ablate import ablation_folder, run_ablation


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "ablate", "a model with and without a plug-in module under one recipe and seed: delta params, MACs, "
        "latency, accuracy",
        "Ablation: trains MODEL twice with one recipe and seed - as is, and with MODULE stitched in at WHERE - "
        "then reports params, MACs, CPU latency and test accuracy of both and their difference.")
    p.add_argument("--model", required=True, help="registered model name (litevision list)")
    p.add_argument("--module", required=True, help="plug-in module name (litevision modules)")
    p.add_argument("--where", default="stages",
                   help="'stages', 'blocks', or comma-separated submodule paths / patterns")
    p.add_argument("--data", help="dataset name or image folder (default: the recipe's)")
    add_data_options(p)
    p.add_argument("--recipe", default="quick", help="training recipe")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="recipe override for both runs, e.g. sched.epochs=2 (repeatable)")
    p.add_argument("--epochs", type=int, help="shortcut for --set sched.epochs=...")
    p.add_argument("--seed", type=int, help="shortcut for --set run.seed=...")
    p.add_argument("--module-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="module constructor option, value parsed as YAML (repeatable), e.g. rd_ratio=0.25")
    add_output(p, "folder for <model>-<module>/ (both run folders and ablation.json)", default="runs/ablate")
    p.add_argument("--no-train", action="store_true", help="only params / MACs / latency (no training)")
    p.add_argument("--threads", type=int, help="threads for the latency measurement (default: all usable cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    module_kwargs = parse_key_values(args.module_opt, "--module-opt")
    where = args.where if args.where in ("stages", "blocks") else [w.strip() for w in args.where.split(",") if w]
    overrides = list(args.overrides)
    overrides += [f"sched.epochs={args.epochs}"] if args.epochs is not None else []
    overrides += [f"run.seed={args.seed}"] if args.seed is not None else []
    overrides += [f"data.options.{k}={json.dumps(v)}" for k, v in parse_key_values(args.data_opt, "--data-opt").items()]
    folder = Path(args.output) / ablation_folder(args.model, args.module)
    check_output_dir(args.output, [folder.name], overwrite=args.overwrite, clear=[folder.name])
    report = run_ablation(args.model, args.module, where=where, data=args.data, recipe=args.recipe,
                          overrides=overrides, module_kwargs=module_kwargs, output=args.output,
                          train=not args.no_train, threads=args.threads)
    print(report.format())
    print(f"report: {folder / 'ablation.json'}")
    return 0
