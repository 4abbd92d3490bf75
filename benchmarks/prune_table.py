"""Structured pruning to half the MACs, one model per family: parameters and MACs before and after.

Counts only (no timings): each model is built with random weights and ImageNet classes (HybridSN: its Indian Pines
cube and 16 classes), pruned with :func:`litevision.prune` (``target_macs=0.5``, L2 importance) at its card's
input size, and counted with :func:`litevision.count_complexity`. The table in ``docs/compression.md`` is this
file's output.

    python benchmarks/prune_table.py                 # -> benchmarks/results/prune_table.json
    python benchmarks/prune_table.py --models lsnet_t lcnet_t --input-size 128 --output /tmp/prune.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch
import torch_pruning

import litevision as lv
from litevision.models import get_model_card
from litevision.version import __version__

ROOT = Path(__file__).resolve().parent
# one per family (and one plug-in module stitched in): the models the family pages discuss
MODELS = ("mobilenetv1_100", "mobilenetv2_100", "mobilenetv3_large_100", "efficientnet_b0", "resnet18",
          "seresnet18", "cbam_resnet18", "resnet18+eca", "shufflenetv1_g3_100", "shufflenetv2_100", "lsnet_t",
          "lcnet_t", "hybridsn")
# what each family needs beyond Torch-Pruning's DepGraph (docs/compression.md explains each)
APPROACH = {
    "mobilenetv1": "DepGraph", "mobilenetv2": "DepGraph", "mobilenetv3": "DepGraph (SE gates traced)",
    "efficientnet": "DepGraph (SE gates traced)", "resnet": "DepGraph; CBAM / ECA: gate pruners",
    "shufflenetv1": "shuffle-row pruner for the bottleneck; stage widths kept",
    "shufflenetv2": "DepGraph for the branch; shuffled stage widths kept",
    "lsnet": "SKA weight-row pruner, attention kept inside", "lcnet": "DTConv bank / router and MDAM pruners",
    "hybridsn": "DepGraph (3-D -> 2-D fold traced)",
}


def measure(spec: str, target: float, size: int | None) -> dict[str, object]:
    name, _, module = spec.partition("+")
    kwargs = {"stitch": [{"module": module, "where": "stages"}]} if module else {}
    card = get_model_card(name)
    input_size = tuple(card.input_size)
    if size is not None and len(input_size) == 3:
        input_size = (input_size[0], size, size)
    torch.manual_seed(0)
    model = lv.create_model(name, **kwargs).eval()
    start = time.perf_counter()
    result = lv.prune(model, target_macs=target, input_size=input_size)
    seconds = time.perf_counter() - start
    return {"model": spec, "family": card.family, "approach": APPROACH.get(card.family, "DepGraph"),
            "input_size": list(input_size), "num_classes": int(model.num_classes), "ratio": round(result.ratio, 4),
            "params_before": result.params_before, "params_after": result.params_after,
            "macs_before": result.macs_before, "macs_after": result.macs_after,
            "macs_fraction": round(result.macs_fraction, 4), "params_fraction": round(result.params_fraction, 4),
            "search_trials": len(result.trials), "prune_seconds_not_a_benchmark": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="model names (name+module: stitched)")
    parser.add_argument("--target-macs", type=float, default=0.5)
    parser.add_argument("--input-size", type=int, help="square input size (default: each card's)")
    parser.add_argument("--output", default=str(ROOT / "results" / "prune_table.json"))
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    rows = []
    for spec in args.models:
        row = measure(spec, args.target_macs, args.input_size)
        rows.append(row)
        print(f"{spec:24s} params {row['params_before'] / 1e6:7.3f}M -> {row['params_after'] / 1e6:7.3f}M   "
              f"MACs {row['macs_before'] / 1e6:8.1f}M -> {row['macs_after'] / 1e6:8.1f}M "
              f"({row['macs_fraction']:.3f})   ratio {row['ratio']:.3f}", file=sys.stderr)
    out = {"litevision": __version__, "torch": torch.__version__, "torch_pruning": torch_pruning.__version__,
           "target_macs": args.target_macs,
           "importance": "l2", "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
