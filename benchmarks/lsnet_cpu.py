"""CPU benchmark of LSNet: SKA implementations side by side, then whole-model throughput.

1. SKA at every shape LSNet-T/S/B run it (224 input), batch 1 and 16, forward and forward+backward:
   ``reference`` (unfold + channel gather, the literal definition), ``unfold`` (unfold with the weights
   broadcast over the C/G channel blocks: the fair unfold formulation), ``decomposed`` (out-of-place
   shift-and-accumulate, the export path) and ``ska`` (the ``litevision::ska`` operator: in-place
   shift-and-accumulate with the hand-written backward). Ratio = unfold ms / ska ms.
2. Throughput (images/s, batch 16 and 1) of lsnet_t/s/b eager unfused, eager fused and onnxruntime (the
   fused model exported with standard ops), next to torchvision mobilenet_v3_large eager (and its
   onnxruntime export) measured in the same run.

The machine this runs on is usually shared: every case is timed in interleaved rounds (all candidates of a
group once per round, first one rotating) and the minimum over rounds is kept; the key ratios are measured
in two separate passes and both are reported.

    python benchmarks/lsnet_cpu.py                 # -> benchmarks/results/lsnet_cpu.json
    python benchmarks/lsnet_cpu.py --quick --threads 2 --output /tmp/lsnet.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

import litevision as lv
from litevision.bench.timing import summarize_loads, time_interleaved
from litevision.ops.ska import ska, ska_decomposed, ska_reference
from litevision.utils.cpu import cpu_description

# (model, stage, channels, resolution at 224 input) for every stage with LS convolutions
SKA_SHAPES = [
    ("lsnet_t", 2, 128, 14), ("lsnet_t", 3, 256, 7),
    ("lsnet_s", 1, 96, 28), ("lsnet_s", 2, 192, 14), ("lsnet_s", 3, 320, 7),
    ("lsnet_b", 1, 128, 28), ("lsnet_b", 2, 256, 14), ("lsnet_b", 3, 384, 7),
]
TARGETS = {"ska_vs_unfold_b16_stage2": 3.0, "lsnet_t_fused_vs_mbv3_b16": 1.5, "lsnet_t_ort_vs_fused_b16": 2.0}
# issue 15: the device case, batch 1, one thread
BATCH1_TARGETS = {"lsnet_t_fused_vs_mbv3_eager": 1.0, "lsnet_t_ort_vs_mbv3_ort": 0.8}


def ska_unfold(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Unfold formulation without the gather: (B, C/G, G, 9, HW) patches times broadcast weights."""
    b, c, h, wd = x.shape
    g = w.shape[1]
    patches = F.unfold(x, 3, padding=1).view(b, c // g, g, 9, h * wd)
    return (patches * w.view(b, 1, g, 9, h * wd)).sum(3).view(b, c, h, wd)


SKA_IMPLS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "reference": ska_reference, "unfold": ska_unfold, "decomposed": ska_decomposed, "ska": ska,
}


LOADS: list[dict] = []  # the machine's load during every timed group (summarized in the JSON's meta)


def interleaved_min(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Seconds per call: each candidate once per round (rotating who goes first), minimum over rounds."""
    stats = time_interleaved(fns, rounds=rounds, warmup=warmup)
    LOADS.append(stats.load)
    return {n: s.min_ms / 1e3 for n, s in stats.items()}


def _forward(fn: Callable, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return fn(x, w)


def _forward_backward(fn: Callable, x: torch.Tensor, w: torch.Tensor, grad: torch.Tensor) -> tuple:
    return torch.autograd.grad(fn(x, w), (x, w), grad)


def bench_ska(batch_sizes: tuple[int, ...], rounds: int) -> list[dict]:
    rows = []
    for model, stage, c, res in SKA_SHAPES:
        for bs in batch_sizes:
            x = torch.randn(bs, c, res, res)
            w = torch.randn(bs, c // 8, 9, res, res)
            grad = torch.randn_like(x)
            xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()

            for mode in ("forward", "forward+backward"):
                if mode == "forward":
                    calls = {n: partial(_forward, f, x, w) for n, f in SKA_IMPLS.items()}
                else:
                    calls = {n: partial(_forward_backward, f, xg, wg, grad) for n, f in SKA_IMPLS.items()}
                if bs > 1 and mode == "forward+backward":
                    calls.pop("reference")  # autograd through the gather: seconds per call, adds nothing
                sec = interleaved_min(calls, rounds)
                ms = {n: round(s * 1e3, 3) for n, s in sec.items()}
                row = {"model": model, "stage": stage, "shape": [bs, c, res, res], "mode": mode, "ms": ms,
                       "unfold_over_ska": round(sec["unfold"] / sec["ska"], 2),
                       "decomposed_over_ska": round(sec["decomposed"] / sec["ska"], 2)}
                rows.append(row)
                print(f"ska {model} stage{stage} {row['shape']} {mode}: {ms}  unfold/ska "
                      f"{row['unfold_over_ska']}x", file=sys.stderr, flush=True)
    return rows


def _ort_session(model: torch.nn.Module, path: Path, threads: int):
    import onnxruntime as ort

    x = torch.randn(2, 3, 224, 224)
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@torch.no_grad()
def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BatchNorm parameters and statistics (fresh inits zero some branches, e.g. LSNet's
    pw2/proj BN weights, which an exporter could then fold away)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def build_candidates(names: list[str], threads: int, tmp: Path) -> dict[str, Callable[[torch.Tensor], object]]:
    import torchvision

    cands: dict[str, Callable[[torch.Tensor], object]] = {}
    mbv3 = _trained_like(torchvision.models.mobilenet_v3_large())
    cands["mobilenet_v3_large/eager"] = mbv3
    for name in names:
        model = _trained_like(lv.create_model(name))
        cands[f"{name}/eager"] = model
        fused = lv.fuse_model(copy.deepcopy(model))
        cands[f"{name}/eager_fused"] = fused
        session = _ort_session(fused, tmp / f"{name}.onnx", threads)
        cands[f"{name}/onnxruntime"] = lambda x, s=session: s.run(None, {"input": x.numpy()})
    session = _ort_session(mbv3, tmp / "mbv3.onnx", threads)
    cands["mobilenet_v3_large/onnxruntime"] = lambda x, s=session: s.run(None, {"input": x.numpy()})
    return cands


def bench_models(cands: dict[str, Callable], batch: int, rounds: int) -> dict[str, float]:
    x = torch.randn(batch, 3, 224, 224)

    def call(fn):
        with torch.inference_mode():
            return fn(x)

    sec = interleaved_min({n: (lambda f=f: call(f)) for n, f in cands.items()}, rounds)
    ips = {n: round(batch / s, 1) for n, s in sec.items()}
    print(f"throughput batch {batch} (img/s): {ips}", file=sys.stderr, flush=True)
    return ips


def key_ratios(ska_rows: list[dict], ips16: dict[str, float]) -> dict[str, float]:
    stage2 = [r for r in ska_rows if r["model"] == "lsnet_t" and r["stage"] == 2 and r["shape"][0] == 16
              and r["mode"] == "forward"]
    out = {
        "lsnet_t_fused_vs_mbv3_b16": round(ips16["lsnet_t/eager_fused"] / ips16["mobilenet_v3_large/eager"], 2),
        "lsnet_t_ort_vs_fused_b16": round(ips16["lsnet_t/onnxruntime"] / ips16["lsnet_t/eager_fused"], 2),
        "lsnet_t_fused_vs_unfused_b16": round(ips16["lsnet_t/eager_fused"] / ips16["lsnet_t/eager"], 2),
        "lsnet_t_ort_vs_mbv3_ort_b16": round(ips16["lsnet_t/onnxruntime"] / ips16["mobilenet_v3_large/onnxruntime"],
                                             2),
    }
    if stage2:
        out["ska_vs_unfold_b16_stage2"] = stage2[0]["unfold_over_ska"]
    return out


def _eager(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return run


def bench_batches(threads_list: tuple[int, ...], batches: tuple[int, ...], rounds: int, tmp: Path) -> list[dict]:
    """LSNet-T fused eager and onnxruntime (litevision's export: dynamo + clean-up) against torchvision
    MobileNetV3-Large eager and onnxruntime, per thread count and batch; ms per image and the ratios."""
    import torchvision

    from litevision.export import export_onnx, ort_session

    lsnet = lv.fuse_model(_trained_like(lv.create_model("lsnet_t")))
    mbv3 = _trained_like(torchvision.models.mobilenet_v3_large())
    paths = {"lsnet_t": export_onnx(copy.deepcopy(lsnet), tmp / "lsnet_t_lv.onnx", input_size=(3, 224, 224)).path,
             "mobilenet_v3_large": export_onnx(copy.deepcopy(mbv3), tmp / "mbv3_lv.onnx",
                                               input_size=(3, 224, 224)).path}
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        sessions = {k: ort_session(v, threads=threads) for k, v in paths.items()}
        for batch in batches:
            x = torch.randn(batch, 3, 224, 224)
            feeds = {k: {s.get_inputs()[0].name: x.numpy()} for k, s in sessions.items()}

            fns = {"lsnet_t/eager_fused": _eager(lsnet, x), "mobilenet_v3_large/eager": _eager(mbv3, x),
                   **{f"{k}/onnxruntime": (lambda s=s, f=feeds[k]: s.run(None, f)) for k, s in sessions.items()}}
            stats = time_interleaved(fns, rounds=rounds, per_round=2 if batch == 1 else 1, warmup=2)
            LOADS.append(stats.load)
            ms = {n: round(v.median_ms / batch, 3) for n, v in stats.items()}
            row = {"threads": threads, "batch": batch, "ms_per_image": ms, "trusted": stats.load["trusted"],
                   "ratios": {"lsnet_t_fused_vs_mbv3_eager": round(ms["mobilenet_v3_large/eager"]
                                                                  / ms["lsnet_t/eager_fused"], 3),
                              "lsnet_t_ort_vs_mbv3_ort": round(ms["mobilenet_v3_large/onnxruntime"]
                                                              / ms["lsnet_t/onnxruntime"], 3)}}
            rows.append(row)
            print(f"threads {threads} batch {batch}: {ms} ratios {row['ratios']}", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads (1 by default: stable timings on a shared, oversubscribed machine)")
    p.add_argument("--parts", nargs="*", default=["ska", "models", "batches"], choices=["ska", "models", "batches"])
    p.add_argument("--models", nargs="*", default=["lsnet_t", "lsnet_s", "lsnet_b"])
    p.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    p.add_argument("--output", default=str(Path(__file__).parent / "results" / "lsnet_cpu.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ska_rounds, model_rounds = (3, 2) if args.quick else (15, 6)

    t0 = time.time()
    ska_rows = bench_ska((1, 16), ska_rounds) if "ska" in args.parts else []
    passes = []
    if "models" in args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            cands = build_candidates(args.models, args.threads, Path(tmp))
            for _ in range(2):  # the key ratios, measured twice
                ips16 = bench_models(cands, 16, model_rounds)
                ips1 = bench_models(cands, 1, model_rounds * 3)
                passes.append({"batch16_img_s": ips16, "batch1_img_s": ips1,
                               "ratios": key_ratios(ska_rows, ips16)})
    batch_rows = []
    if "batches" in args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            batch_rows = bench_batches((1, 2), (1, 8, 32), model_rounds * 2, Path(tmp))
        torch.set_num_threads(args.threads)
    if ska_rows and passes:  # second measurement of the SKA ratio at the target shape
        again = [r for r in bench_ska((16,), ska_rounds) if r["model"] == "lsnet_t" and r["stage"] == 2
                 and r["mode"] == "forward"][0]
        passes[1]["ratios"]["ska_vs_unfold_b16_stage2"] = again["unfold_over_ska"]

    result = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__, "threads": args.threads,
            "cpu": cpu_description(), "cpus": os.cpu_count(),
            "load_average_at_end": list(os.getloadavg()), "seconds": round(time.time() - t0, 1),
            "load": summarize_loads(LOADS),
            "timing": "minimum over interleaved rounds; ratios from the same run",
        },
        "targets": TARGETS,
        "ska": ska_rows,
        "models": passes,
        "targets_met": {k: [p_["ratios"].get(k, 0) >= v for p_ in passes] for k, v in TARGETS.items()},
        "batches": batch_rows,
        "batch1_targets": BATCH1_TARGETS,
        "batch1_targets_met": {k: [r["ratios"][k] >= v for r in batch_rows if r["batch"] == 1 and r["threads"] == 1]
                               for k, v in BATCH1_TARGETS.items()},
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"ratios": [p_["ratios"] for p_ in passes], "targets_met": result["targets_met"]}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
