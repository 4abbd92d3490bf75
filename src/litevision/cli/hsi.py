"""``litevision hsi reproduce``: HybridSN on Indian Pines with the paper's protocol (see docs/hyperspectral.md)."""

from __future__ import annotations

import argparse
import shlex
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hsi", help="hyperspectral classification (HybridSN on Indian Pines)")
    hsi_sub = p.add_subparsers(dest="hsi_command", metavar="ACTION")
    r = hsi_sub.add_parser("reproduce", help="train and evaluate HybridSN on Indian Pines; write JSON + maps")
    r.add_argument("--split", choices=("random", "disjoint"), default="random",
                   help="random stratified pixels (the paper) or spatially disjoint blocks")
    r.add_argument("--epochs", type=int, default=100, help="training epochs (paper: 100)")
    r.add_argument("--out", default="runs/hsi", help="folder for <name>.json and <name>_map.png")
    r.add_argument("--name", default=None, help="file stem (default hybridsn_indian_pines_<split>)")
    r.add_argument("--seed", type=int, default=0, help="split, initialisation and shuffling seed")
    r.add_argument("--batch-size", type=int, default=256)
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--train-ratio", type=float, default=0.3, help="fraction of labelled pixels for training")
    r.add_argument("--n-components", type=int, default=30, help="PCA bands")
    r.add_argument("--patch-size", type=int, default=25)
    r.add_argument("--block-size", type=int, default=10, help="block side of the disjoint split")
    r.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    r.add_argument("--save-model", action="store_true", help="also write <name>.safetensors")
    r.add_argument("--eval-every", type=int, default=0,
                   help="record test OA every N epochs (learning curve only; the last epoch is evaluated)")
    r.add_argument("--state", default=None, help="training-state file: saved every epoch, resumed if present")
    r.set_defaults(func=run_reproduce)
    e = hsi_sub.add_parser("eval", help="OA / AA / kappa and the map for a run of `litevision train` on a "
                                        "hyperspectral dataset")
    e.add_argument("checkpoint", help="a run folder or its .safetensors weights")
    e.add_argument("--out", default=None, help="report folder (default <run>/hsi-eval)")
    e.add_argument("--data", default=None, help="dataset name (default: the one it was trained on)")
    e.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dataset option, e.g. --data-opt split=disjoint (repeatable)")
    e.add_argument("--batch-size", type=int, default=256)
    e.set_defaults(func=run_eval)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_reproduce(args: argparse.Namespace) -> int:
    import torch

    from litevision.engine.hsi import reproduce_indian_pines

    if args.threads:
        torch.set_num_threads(args.threads)
    result = reproduce_indian_pines(
        args.split, args.epochs, args.out, args.seed, name=args.name, batch_size=args.batch_size, lr=args.lr,
        train_ratio=args.train_ratio, n_components=args.n_components, patch_size=args.patch_size,
        block_size=args.block_size, save_model=args.save_model, eval_every=args.eval_every, state_path=args.state,
        command="litevision " + shlex.join(sys.argv[1:]),
    )
    m = result["metrics"]
    print(f"OA {100 * m['oa']:.2f}%  AA {100 * m['aa']:.2f}%  kappa {100 * m['kappa']:.2f}  -> {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import yaml

    from litevision.engine.hsi import evaluate_checkpoint
    from litevision.errors import UserError

    options = {}
    for item in args.data_opt:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--data-opt expects KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(value)
    result = evaluate_checkpoint(args.checkpoint, args.out, dataset=args.data, options=options,
                                 batch_size=args.batch_size)
    m = result["metrics"]
    print(f"OA {100 * m['oa']:.2f}%  AA {100 * m['aa']:.2f}%  kappa {100 * m['kappa']:.2f}")
    for row in m["per_class"]:
        acc = "-" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f}"
        print(f"  {row['class']:32s} {acc:>7s}  ({row['support']})")
    return 0
