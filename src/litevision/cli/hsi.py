"""``litevision hsi reproduce``: HybridSN on Indian Pines with the paper's protocol (see docs/hyperspectral.md).

The run is the recipe ``hybridsn_indian_pines`` trained by the one trainer (``litevision train
hybridsn_indian_pines`` trains the same); this command adds the write-up: ``<name>.json`` and the class map.
Evaluate a hyperspectral run folder again with ``litevision eval RUN``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from litevision.cli._common import add_command
from litevision.workflows import reproduce_indian_pines


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "hsi", "hyperspectral classification (HybridSN on Indian Pines)")
    hsi_sub = p.add_subparsers(dest="hsi_command", metavar="ACTION")
    r = add_command(hsi_sub, "reproduce", "HybridSN on Indian Pines (random or spatially disjoint split): the "
                                          "paper's recipe through the trainer, written up as JSON + class map")
    r.add_argument("--split", choices=("random", "disjoint"), default="random",
                   help="random stratified pixels (the paper) or spatially disjoint blocks")
    r.add_argument("--epochs", type=int, default=100, help="training epochs (paper: 100)")
    r.add_argument("--output", "--out", dest="output", default="runs/hsi", metavar="PATH",
                   help="folder for <name>.json, <name>_map.png and runs/<name> (a run left there is resumed)")
    r.add_argument("--name", default=None, help="file stem (default hybridsn_indian_pines_<split>)")
    r.add_argument("--seed", type=int, default=0, help="split, initialisation and shuffling seed")
    r.add_argument("--batch-size", type=int, help="shortcut for --set data.batch_size=... (paper: 256)")
    r.add_argument("--lr", type=float, help="shortcut for --set optim.lr=... (paper: 1e-3)")
    r.add_argument("--train-ratio", type=float, help="fraction of labelled pixels for training (paper: 0.3)")
    r.add_argument("--n-components", type=int, help="PCA bands (paper: 30)")
    r.add_argument("--patch-size", type=int, help="patch side (paper: 25)")
    r.add_argument("--block-size", type=int, help="block side of the disjoint split (default 10)")
    r.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all usable cores)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other recipe override (repeatable)")
    r.set_defaults(func=run_reproduce)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_reproduce(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = [("data.batch_size", args.batch_size), ("optim.lr", args.lr),
             ("data.options.train_ratio", args.train_ratio), ("data.options.n_components", args.n_components),
             ("data.options.patch_size", args.patch_size), ("data.options.block_size", args.block_size)]
    overrides = [f"{k}={v}" for k, v in pairs if v is not None] + list(args.overrides)
    result = reproduce_indian_pines(args.split, args.epochs, args.output, args.seed, name=args.name,
                                    overrides=overrides, command="litevision " + shlex.join(sys.argv[1:]))
    m = result["metrics"]
    name = args.name or f"hybridsn_indian_pines_{args.split}"
    print(f"OA {100 * m['oa']:.2f}%  AA {100 * m['aa']:.2f}%  kappa {100 * m['kappa']:.2f}")
    out = Path(args.output)
    print(f"wrote {out / (name + '.json')} and the class map; run folder {out / result['run']}")
    return 0
