"""GPU benchmark, one prepared script for one call on a lent GPU machine: LSNet throughput and the Triton SKA kernel.

1. LSNet-T/S/B inference throughput at batch 256 (fused, channels-last, AMP), next to the paper's RTX 3090
   figures (14,708 / 9,023 / 3,996 img/s). Different GPUs are not comparable one to one: the JSON names the
   GPU, and the ratio to the paper is reported as measured, not scaled.
2. SKA at LSNet-T/S/B's shapes, batch 256: the ``litevision::ska`` operator (our Triton kernels on CUDA)
   against the unfold formulation, forward and forward+backward, in ms and as a ratio.

CUDA timing uses events around ``--iters`` calls after ``--warmup`` calls. ``--smoke`` runs every code path on
tiny shapes on the CPU (with ``TRITON_INTERPRET=1`` the Triton kernels run in Triton's interpreter): that is
how the tests keep this script working on machines without a GPU.

    python benchmarks/gpu.py                       # -> benchmarks/results/gpu.json
    TRITON_INTERPRET=1 python benchmarks/gpu.py --smoke --output /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

import litevision as lv
from litevision.ops.ska import ska, ska_reference

ROOT = Path(__file__).resolve().parent
PAPER_RTX3090_IMG_S = {"lsnet_t": 14708, "lsnet_s": 9023, "lsnet_b": 3996}
# (model, channels, resolution at 224) of the LS-convolution stages
SKA_SHAPES = [("lsnet_t", 128, 14), ("lsnet_t", 256, 7), ("lsnet_s", 192, 14), ("lsnet_s", 320, 7),
              ("lsnet_b", 256, 14), ("lsnet_b", 384, 7)]


def ska_unfold(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    b, c, h, wd = x.shape
    g = w.shape[1]
    patches = F.unfold(x, 3, padding=1).view(b, c // g, g, 9, h * wd)
    return (patches * w.view(b, 1, g, 9, h * wd)).sum(3).view(b, c, h, wd)


def timed_ms(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / iters
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) * 1e3 / iters


def model_throughput(device: torch.device, batch: int, size: int, amp: torch.dtype | None, warmup: int,
                     iters: int) -> list[dict]:
    rows = []
    for name, paper in PAPER_RTX3090_IMG_S.items():
        model = lv.fuse_model(lv.create_model(name).eval()).to(device)
        x = torch.randn(batch, 3, size, size, device=device)
        if device.type == "cuda":
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

        def run(model: torch.nn.Module = model, x: torch.Tensor = x) -> object:
            with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                return model(x)

        ms = timed_ms(run, device, warmup, iters)
        rows.append({"model": name, "batch": batch, "input": size, "img_s": round(batch * 1e3 / ms, 1),
                     "paper_rtx3090_img_s": paper, "ratio_to_paper": round(batch * 1e3 / ms / paper, 3)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _forward_backward(fn: Callable, x: torch.Tensor, w: torch.Tensor, grad: torch.Tensor) -> tuple:
    return torch.autograd.grad(fn(x, w), (x, w), grad)


def ska_kernels(device: torch.device, batch: int, scale: int, warmup: int, iters: int) -> list[dict]:
    interpret = device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
    triton_ops = None
    if interpret:  # the Triton kernels on CPU tensors, in Triton's interpreter (code-path check only)
        from litevision.ops import _ska_triton as triton_ops
    rows = []
    for model, c, res in SKA_SHAPES:
        c, res = max(8, c // scale), max(3, res // scale)
        x = torch.randn(batch, c, res, res, device=device, requires_grad=True)
        w = torch.randn(batch, c // 8, 9, res, res, device=device, requires_grad=True)
        grad = torch.randn_like(x)
        impls: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"unfold": ska_unfold, "ska": ska}
        if triton_ops is not None:
            impls["ska"] = lambda a, b: triton_ops.forward(a.detach(), b.detach())
        with torch.no_grad():
            ref = ska_reference(x, w)
            err = float((impls["ska"](x, w) - ref).abs().max())
        row: dict = {"model": model, "shape": [batch, c, res, res], "max_abs_err": err, "ms": {}}
        for name, fn in impls.items():
            forward = partial(fn, x.detach(), w.detach())
            row["ms"][f"{name}/forward"] = round(timed_ms(forward, device, warmup, iters), 4)
            if triton_ops is None:
                both = partial(_forward_backward, fn, x, w, grad)
                row["ms"][f"{name}/forward+backward"] = round(timed_ms(both, device, warmup, iters), 4)
        row["unfold_over_ska"] = {k.split("/")[1]: round(row["ms"][k] / row["ms"][f"ska/{k.split('/')[1]}"], 2)
                                  for k in row["ms"] if k.startswith("unfold/")}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--amp", choices=("bf16", "fp16", "none"), default="fp16")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--smoke", action="store_true", help="tiny shapes, a few calls: checks the code paths on a CPU")
    p.add_argument("--output", default=str(ROOT / "results" / "gpu.json"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[args.amp]
    batch, size, scale, warmup, iters = args.batch, 224, 1, args.warmup, args.iters
    if args.smoke:
        batch, size, scale, warmup, iters, amp = 2, 64, 8, 1, 2, None
    result = {
        "meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__, "device": str(device),
                 "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                 "amp": None if amp is None else str(amp).removeprefix("torch."), "smoke": args.smoke,
                 "paper_gpu": "RTX 3090 (LSNet paper, Table 1 throughput)"},
        "models": model_throughput(device, batch, size, amp, warmup, iters),
        "ska": ska_kernels(device, batch, scale, warmup, iters),
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
