"""``litevision prune MODEL_OR_RUN (--target-macs F | --ratio R) --output DIR``: structured pruning (Torch-Pruning,
the ``compress`` extra) to a pruned weights file that rebuilds without pickle, optionally fine-tuned."""

from __future__ import annotations

import argparse

from litevision.cli._common import (
    add_command,
    add_data_options,
    add_input_size,
    add_output,
    check_output_dir,
    parse_key_values,
)
from litevision.compress import IMPORTANCES
from litevision.workflows.prune import FINETUNE_DIR, PRUNE_FILES, check_prune_args, prune_model, source_model_name


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "prune", "structured pruning to a MAC budget (channels removed, Torch-Pruning DepGraph); "
                                  "writes pruned.safetensors + prune.json, optionally fine-tunes with a recipe")
    p.add_argument("model", metavar="MODEL_OR_RUN",
                   help="a litevision model name, or a run folder / weights file of `litevision train`")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--target-macs", type=float, metavar="F",
                        help="fraction of the MACs to keep, e.g. 0.5 (reached within 5%%)")
    budget.add_argument("--ratio", type=float, metavar="R",
                        help="share of the channels of every prunable width removed")
    p.add_argument("--importance", default="l2", choices=IMPORTANCES,
                   help="which channels go: l1 / l2 weight magnitude, taylor (|w x grad| on --calibration-batches "
                        "of the training data), random")
    add_input_size(p, "where the MACs are counted: S, H W or C H W pixels")
    p.add_argument("--checkpoint", help="weights for a model given by name (default: random init)")
    p.add_argument("--num-classes", type=int, help="classes of a model given by name without --data (default: its "
                                                   "card's)")
    p.add_argument("--data", help="dataset for the top-1 report, taylor's batches and the model's classes / input "
                                  "channels (default: a run's own dataset, or the --fine-tune recipe's)")
    add_data_options(p)
    p.add_argument("--fine-tune", metavar="RECIPE", help="train the pruned network with this recipe (name or YAML) in "
                                                         f"OUTPUT/{FINETUNE_DIR}")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the fine-tuning recipe, e.g. --set sched.epochs=3 (repeatable)")
    p.add_argument("--steps", type=int, default=1, help="prune in this many steps, importance recomputed after each")
    p.add_argument("--round-to", type=int, help="keep pruned widths multiples of this: 16 (AVX-512) or 8 (AVX2) for "
                   "onnxruntime speed, whose blocked CPU kernels want such widths")
    p.add_argument("--calibration-batches", type=int, default=4, help="training batches for taylor importance")
    p.add_argument("--batch-size", type=int, default=32, help="batch size of calibration and evaluation")
    p.add_argument("--recalibrate-bn", type=int, default=0, metavar="N",
                   help="re-estimate the pruned network's BatchNorm statistics on N training batches (evaluation "
                        "transform, no gradients) before it is saved; 0: off")
    add_output(p, "output folder", required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_prune_args(args.target_macs, args.ratio, args.importance, args.steps, args.round_to,
                     args.calibration_batches, args.recalibrate_bn)
    source_model_name(args.model)
    options = parse_key_values(args.data_opt, "--data-opt")
    check_output_dir(args.output, PRUNE_FILES, overwrite=args.overwrite, clear=(FINETUNE_DIR,))
    report = prune_model(
        args.model, args.output, target_macs=args.target_macs, ratio=args.ratio, importance=args.importance,
        input_size=args.input_size, checkpoint=args.checkpoint, num_classes=args.num_classes, data=args.data,
        data_options=options or None, fine_tune=args.fine_tune, overrides=args.overrides,
        iterative_steps=args.steps, round_to=args.round_to, calibration_batches=args.calibration_batches,
        batch_size=args.batch_size, recalibrate_bn=args.recalibrate_bn)
    print(report.summary())
    print(f"wrote {', '.join(str(f) for f in report.files)}")
    return 0
