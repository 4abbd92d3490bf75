"""Deploy speed on CPU, one run, ratios (ours and the baseline are always timed in the same run, interleaved).

1. ``mobilenetv3_large_100``: our deploy path (fuse -> ONNX -> onnxruntime) at batch 1 vs torchvision
   ``mobilenet_v3_large`` in eager PyTorch at batch 1 (goal >= 3x).
2. INT8 (static QDQ, per-channel, calibrated on bundled training images) vs fp32 onnxruntime at batch 1
   for ``resnet18`` and ``mobilenetv3_large_100`` (goal >= 1.2x), with top-1 agreement of INT8 with fp32
   on the 1,000 bundled test images (goal >= 99%). Agreement needs a model with real decisions, so both
   are first trained briefly on the bundled Fashion-MNIST subset at the benchmark size (grey images as
   RGB); both INT8 policies (``full``, ``dense``) are measured.
3. ``--families``: eager / ORT fp32 / ORT INT8 latency at batch 1 for one model per registered family.

Timing: every variant gets the same input; rounds of ``--per-round`` calls rotate over the variants
``--rounds`` times so load from other processes hits all of them alike; medians and ratios of medians are
reported. Results: ``benchmarks/results/deploy_cpu.json``.

    python benchmarks/deploy_cpu.py [--threads 1] [--train-steps 60] [--families]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import litevision as lv
from litevision.bench.timing import fixed_threads, time_interleaved
from litevision.export.images import load_images
from litevision.export.onnx import export_onnx, ort_session
from litevision.export.quantize import quantize_int8
from litevision.models._peers import DataConfig, create_any_model, resolve_data_config

ROOT = Path(__file__).resolve().parent


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[str, dict]:
    """Median / min / p90 ms per variant, timed in rotating rounds."""
    stats = time_interleaved(fns, rounds=rounds, per_round=per_round, warmup=3)
    return {k: {"median_ms": v.median_ms, "min_ms": v.min_ms, "p90_ms": v.p90_ms, "n": v.iters}
            for k, v in stats.items()}


def torch_fn(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return run


def ort_fn(session: object, x: torch.Tensor) -> Callable[[], object]:
    feed = {session.get_inputs()[0].name: x.numpy()}  # type: ignore[attr-defined]
    return lambda: session.run(None, feed)  # type: ignore[attr-defined]


def ort_logits(session: object, x: torch.Tensor, batch: int = 50) -> np.ndarray:
    name = session.get_inputs()[0].name  # type: ignore[attr-defined]
    return np.concatenate([session.run(None, {name: x[i:i + batch].numpy()})[0]  # type: ignore[attr-defined]
                           for i in range(0, len(x), batch)])


def train_briefly(name: str, size: int, steps: int, work: Path) -> tuple[torch.nn.Module, DataConfig]:
    from litevision.engine import load_config, load_trained_model, preprocess_from_metadata, train

    run_dir = work / f"{name}-{size}px-{steps}steps"
    weights = run_dir / "last.safetensors"
    if not weights.is_file():  # reuse an earlier run of this script with the same settings
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        cfg = load_config("quick", [f"model.name={name}", f"data.input_size={size}", "data.in_chans=3",
                                    "data.batch_size=32", "data.val_split=none", "sched.epochs=1",
                                    "sched.warmup_epochs=0.1", f"run.max_steps={steps}", "run.progress=false",
                                    "run.tensorboard=false"])
        train(cfg, run_dir=run_dir)
    model, meta = load_trained_model(run_dir)
    return model.eval(), preprocess_from_metadata(meta).data_config()


def deploy_vs_torchvision(threads: int, rounds: int, per_round: int, work: Path) -> dict:
    cfg = resolve_data_config("mobilenetv3_large_100")
    ours = lv.create_model("mobilenetv3_large_100").eval()
    path = export_onnx(lv.fuse_model(copy.deepcopy(ours)), work / "mnv3l_fp32.onnx", input_size=cfg.input_size).path
    tv = create_any_model("tv:mobilenet_v3_large").eval()
    x = torch.randn(1, *cfg.input_size)
    times = interleaved_medians({
        "tv_mobilenet_v3_large_eager": torch_fn(tv, x),
        "ours_eager_unfused": torch_fn(ours, x),
        "ours_onnxruntime_fp32": ort_fn(ort_session(path, threads=threads), x),
    }, rounds, per_round)
    ratio = times["tv_mobilenet_v3_large_eager"]["median_ms"] / times["ours_onnxruntime_fp32"]["median_ms"]
    return {"input_size": list(cfg.input_size), "batch": 1, "times": times, "speedup_vs_tv_eager": ratio,
            "goal": 3.0, "met": ratio >= 3.0}


def int8_vs_fp32(name: str, size: int, steps: int, threads: int, rounds: int, per_round: int, work: Path) -> dict:
    start = time.perf_counter()
    model, cfg = train_briefly(name, size, steps, work)
    train_s = time.perf_counter() - start
    fp32 = export_onnx(lv.fuse_model(copy.deepcopy(model)), work / f"{name}_fp32.onnx", input_size=cfg.input_size).path
    calib = load_images(None, count=64, cfg=cfg, split="train")
    test = load_images(None, count=1000, cfg=cfg, split="test")
    sessions = {"fp32": ort_session(fp32, threads=threads)}
    details = {}
    for policy in ("full", "dense"):
        q = quantize_int8(fp32, work / f"{name}_int8_{policy}.onnx", calib, policy=policy)
        sessions[f"int8_{policy}"] = ort_session(q.path, threads=threads)
        details[policy] = {"float_nodes": len(q.excluded_nodes), "quantized_op_types": q.quantized_op_types}
    with torch.inference_mode():
        eager = torch.cat([model(test[i:i + 50]) for i in range(0, len(test), 50)]).numpy()
    labels = torch.tensor([lbl for _, lbl in _bundled_test()])[: len(test)].numpy()
    logits = {k: ort_logits(s, test) for k, s in sessions.items()}
    x = test[:1].clone()
    times = interleaved_medians({k: ort_fn(s, x) for k, s in sessions.items()}, rounds, per_round)
    out = {"input_size": list(cfg.input_size), "train_steps": steps, "train_seconds": train_s,
           "fp32_top1": float((logits["fp32"].argmax(1) == labels).mean() * 100),
           "fp32_vs_eager_max_abs_diff": float(np.abs(logits["fp32"] - eager).max()), "times": times, "policies": {}}
    for policy in ("full", "dense"):
        key = f"int8_{policy}"
        agree = float((logits[key].argmax(1) == logits["fp32"].argmax(1)).mean() * 100)
        speed = times["fp32"]["median_ms"] / times[key]["median_ms"]
        out["policies"][policy] = {**details[policy], "top1": float((logits[key].argmax(1) == labels).mean() * 100),
                                   "agreement_with_fp32_pct": agree, "speedup_vs_fp32": speed,
                                   "met": speed >= 1.2 and agree >= 99.0}
    return out


def _bundled_test() -> list:
    from litevision.data import build_dataset

    test = build_dataset("fashion_mnist_subset").test
    n = len(test)
    step = max(1, n // 1000)
    return [test[i * step] for i in range(min(1000, n))]


def families(threads: int, rounds: int, per_round: int, work: Path) -> list[dict]:
    from litevision.bench.complexity import count_complexity
    from litevision.export.errors import ExportError

    reps = {}
    for n in lv.list_models():
        fam = lv.get_model_card(n).family
        reps.setdefault(fam, n)
    rows = []
    for fam, name in sorted(reps.items()):
        card = lv.get_model_card(name)
        row: dict = {"family": fam, "model": name, "input_size": list(card.input_size)}
        rows.append(row)
        if len(card.input_size) != 3:
            row["note"] = "not an image model"
            continue
        cfg = resolve_data_config(name)
        model = lv.create_model(name).eval()
        c = count_complexity(model, cfg.input_size)
        row.update(params_m=c.params / 1e6, macs_g=c.macs / 1e9)
        x = torch.randn(1, *cfg.input_size)
        fns = {"eager": torch_fn(model, x)}
        try:
            fp32 = export_onnx(lv.fuse_model(copy.deepcopy(model)), work / f"fam_{name}.onnx",
                               input_size=cfg.input_size).path
            fns["ort_fp32"] = ort_fn(ort_session(fp32, threads=threads), x)
            calib = load_images(None, count=32, cfg=cfg, split="train")
            q = quantize_int8(fp32, work / f"fam_{name}_int8.onnx", calib)
            fns["ort_int8"] = ort_fn(ort_session(q.path, threads=threads), x)
            row["exportable"] = "yes"
        except ExportError as e:
            row["exportable"] = f"no: {str(e)[:200]}"
        times = interleaved_medians(fns, rounds, per_round)
        row["latency_ms"] = {k: v["median_ms"] for k, v in times.items()}
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for torch and onnxruntime")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--train-steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--families", action="store_true", help="also the per-family latency table")
    p.add_argument("--work", default="/tmp/litevision-deploy-cpu", help="exports and training runs")
    p.add_argument("--output", default=str(ROOT / "results" / "deploy_cpu.json"))
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"threads": args.threads, "torch": torch.__version__, "machine": platform.processor() or
                    platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    with fixed_threads(args.threads):
        result["deploy_vs_torchvision"] = deploy_vs_torchvision(args.threads, args.rounds, args.per_round, work)
        print(json.dumps(result["deploy_vs_torchvision"], indent=1), flush=True)
        result["int8_vs_fp32"] = {}
        for name in ("resnet18", "mobilenetv3_large_100"):
            result["int8_vs_fp32"][name] = int8_vs_fp32(name, args.size, args.train_steps, args.threads, args.rounds,
                                                        args.per_round, work)
            print(json.dumps({name: result["int8_vs_fp32"][name]}, indent=1), flush=True)
        if args.families:
            result["families"] = families(args.threads, args.rounds, args.per_round, work)
    import onnxruntime

    result["onnxruntime"] = onnxruntime.__version__
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
