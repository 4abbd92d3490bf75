"""CPU benchmark of LCNet-T next to torchvision ResNet-18, measured in the same run.

1. Whole model at 224×224: eval throughput at batch 1 and 16 and train-step throughput (forward, backward,
   AdamW step) at batch 16, for ``lcnet_t`` (as built, and fused for deploy) and torchvision ``resnet18``.
   Besides images/s the script reports *achieved MACs per second* (images/s × MACs per image): LCNet-T does
   0.69× ResNet-18's MACs per image, so images/s alone would flatter it. Target: lcnet_t reaches ≥ 40% of
   resnet18's achieved MACs/s in eval (dynamic ops are no excuse for a 10× slowdown).
2. ``--formulations``: DTConv alone at every shape LCNet-T runs it, batch 1 and 16, forward only, for the
   three batched formulations of :func:`litevision.layers.dynamic_conv.dynamic_conv2d` (``grouped``: one
   grouped conv over the per-sample kernels; ``unfold``: im2col + one batched matmul; ``mixture``: all N
   kernels as one conv, then mix the N outputs). The ``auto`` rule of ``dynamic_conv2d`` comes from here.

Candidates of a group are timed in interleaved rounds (:func:`litevision.bench.timing.time_interleaved`);
medians are reported with min and max so the machine's noise is visible.

    python benchmarks/lcnet_cpu.py                      # -> benchmarks/results/lcnet_cpu.json
    python benchmarks/lcnet_cpu.py --threads 1 --rounds 5 --formulations --output /tmp/lcnet.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torchvision
from torch import nn

import litevision as lv
from litevision.bench.complexity import count_complexity
from litevision.bench.timing import TimingStats, fixed_threads, summarize_loads, time_interleaved
from litevision.layers.dynamic_conv import DTConv, dynamic_conv2d
from litevision.utils.cpu import cpu_description

ROOT = Path(__file__).resolve().parent
TARGET_MACS_PER_S_RATIO = 0.40
PAPER_MS_PER_IMAGE = 7.2  # the LCNet paper's latency claim (its hardware is not stated in the seed guide)


def _eval_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return run


def _train_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], object]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def run() -> object:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return run


def _summary(stats: TimingStats) -> dict[str, float]:
    return {"median_ms": round(stats.median_ms, 3), "min_ms": round(stats.min_ms, 3),
            "max_ms": round(stats.max_ms, 3), "n": stats.iters}


def bench_models(rounds: int, train_rounds: int) -> dict:
    lcnet = lv.create_model("lcnet_t").eval()
    models = {
        "lcnet_t": lcnet,
        "lcnet_t_fused": lv.fuse_model(copy.deepcopy(lcnet)),
        "tv_resnet18": torchvision.models.resnet18().eval(),
    }
    macs = {n: count_complexity(m, (3, 224, 224)).macs for n, m in models.items()}
    # the fused model counts more MACs (MSMod's block-diagonal 1x1 and zero-padded 7x7 kernels multiply
    # zeros); achieved MACs/s counts the model's own work, so both forms are credited the unfused MACs
    out_fused_macs = macs["lcnet_t_fused"]
    macs["lcnet_t_fused"] = macs["lcnet_t"]
    out: dict = {"macs_per_image_g": {n: round(v / 1e9, 4) for n, v in macs.items()},
                 "lcnet_t_fused_counted_macs_g": round(out_fused_macs / 1e9, 4), "cases": []}
    for batch in (1, 16):
        x = torch.randn(batch, 3, 224, 224)
        stats = _timed({n: _eval_fn(m, x) for n, m in models.items()}, rounds=rounds,
                                 per_round=3 if batch == 1 else 1)
        out["cases"].append(_case("eval", batch, stats, macs))
    x, y = torch.randn(16, 3, 224, 224), torch.randint(0, 1000, (16,))
    train_models = {"lcnet_t": lv.create_model("lcnet_t").train(), "tv_resnet18": torchvision.models.resnet18()}
    stats = _timed({n: _train_fn(m, x, y) for n, m in train_models.items()}, rounds=train_rounds,
                             warmup=2)
    out["cases"].append(_case("train_step", 16, stats, macs))
    return out


def _case(mode: str, batch: int, stats: dict[str, TimingStats], macs: dict[str, float]) -> dict:
    row: dict = {"mode": mode, "batch": batch, "models": {}}
    for name, s in stats.items():
        images_per_s = batch / (s.median_ms / 1e3)
        row["models"][name] = {**_summary(s), "images_per_s": round(images_per_s, 2),
                               "ms_per_image": round(s.median_ms / batch, 3),
                               "gmacs_per_s": round(images_per_s * macs[name] / 1e9, 2)}
    ref = row["models"]["tv_resnet18"]
    for name, r in row["models"].items():
        if name != "tv_resnet18":
            r["images_per_s_vs_resnet18"] = round(r["images_per_s"] / ref["images_per_s"], 3)
            r["macs_per_s_vs_resnet18"] = round(r["gmacs_per_s"] / ref["gmacs_per_s"], 3)
    print(f"{mode} batch {batch}: " + "  ".join(
        f"{n} {r['median_ms']:.1f} ms ({r['images_per_s']:.1f} img/s, {r['gmacs_per_s']:.1f} GMAC/s)"
        for n, r in row["models"].items()), file=sys.stderr, flush=True)
    return row


def bench_formulations(rounds: int) -> list[dict]:
    """DTConv's batched convolution at every (channels, resolution) of LCNet-T at 224 input."""
    model = lv.create_model("lcnet_t")
    shapes, rows = [], []
    for i, stage in enumerate(model.stages):
        conv = stage.blocks[0].local_branch
        assert isinstance(conv, DTConv)
        shapes.append((i, conv.in_chs, conv.num_kernels, 56 >> i, conv.kernels()))
    for stage, chs, n, res, kernels in shapes:
        kernels = kernels.detach()
        for batch in (1, 16):
            x = torch.randn(batch, chs, res, res)
            w = torch.rand(batch, n).softmax(-1)
            fns = {f: partial(_no_grad, dynamic_conv2d, x, w, kernels, 1, 1, f)
                   for f in ("grouped", "unfold", "mixture")}
            stats = _timed(fns, rounds=rounds, per_round=2)
            auto = "unfold" if batch > 1 and res * res <= chs else "grouped"
            best = min(stats, key=lambda k: stats[k].median_ms)
            rows.append({"stage": stage, "shape": [batch, chs, res, res], "num_kernels": n,
                         "ms": {k: _summary(v) for k, v in stats.items()}, "fastest": best, "auto_picks": auto})
            print(f"DTConv stage {stage} {rows[-1]['shape']}: " + "  ".join(
                f"{k} {v.median_ms:.2f}" for k, v in stats.items()) + f" ms; fastest {best}, auto {auto}",
                file=sys.stderr, flush=True)
    return rows


def _no_grad(fn: Callable, *args: object) -> object:
    with torch.no_grad():
        return fn(*args)


LOADS: list[dict] = []  # the machine's load during every timed group (summarized in the JSON's meta)


def _timed(fns: dict, **kwargs: int) -> dict:
    stats = time_interleaved(fns, **kwargs)
    LOADS.append(stats.load)
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds per eval case")
    p.add_argument("--train-rounds", type=int, default=5, help="interleaved rounds of the train step")
    p.add_argument("--formulations", action="store_true", help="also time DTConv's three formulations")
    p.add_argument("--output", default=str(ROOT / "results" / "lcnet_cpu.json"))
    args = p.parse_args(argv)
    start = time.time()
    result: dict = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
                             "threads": args.threads, "cpu": cpu_description(), "cpus": os.cpu_count(),
                             "timing": "median of interleaved rounds; ratios from the same run"}}
    torch.manual_seed(0)
    with fixed_threads(args.threads):
        result["models"] = bench_models(args.rounds, args.train_rounds)
        if args.formulations:
            result["formulations"] = bench_formulations(args.rounds)
    eval_rows = [c for c in result["models"]["cases"] if c["mode"] == "eval"]
    result["target"] = {
        "lcnet_t_macs_per_s_vs_resnet18_eval": TARGET_MACS_PER_S_RATIO,
        "measured": {f"batch{c['batch']}": {n: c["models"][n]["macs_per_s_vs_resnet18"]
                                            for n in ("lcnet_t", "lcnet_t_fused")} for c in eval_rows},
    }
    result["target"]["met"] = all(v >= TARGET_MACS_PER_S_RATIO for row in result["target"]["measured"].values()
                                  for v in row.values())
    b1 = next(c for c in eval_rows if c["batch"] == 1)["models"]
    result["latency_vs_paper"] = {"paper_ms_per_image": PAPER_MS_PER_IMAGE,
                                  "lcnet_t_batch1_ms": b1["lcnet_t"]["median_ms"],
                                  "lcnet_t_fused_batch1_ms": b1["lcnet_t_fused"]["median_ms"]}
    result["meta"].update(seconds=round(time.time() - start, 1), load_average_at_end=list(os.getloadavg()),
                          load=summarize_loads(LOADS))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["target"], indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
