"""Deploy speed on CPU, one run, ratios (ours and the baseline are always timed in the same run, interleaved).

1. ``mobilenetv3_large_100``: our deploy path (fuse -> ONNX -> onnxruntime) at batch 1 vs torchvision
   ``mobilenet_v3_large`` in eager PyTorch at batch 1 (goal >= 3x).
2. INT8 (static QDQ, per-channel, calibrated on bundled training images) vs fp32 onnxruntime at batch 1
   for ``resnet18`` and ``mobilenetv3_large_100`` (goal >= 1.2x), with top-1 agreement of INT8 with fp32
   on the 1,000 bundled test images (goal >= 99%). Agreement needs a model with real decisions, so both
   are first trained on the bundled Fashion-MNIST subset (``quick`` recipe, ``--train-epochs`` at
   ``--train-size`` px, grey images as RGB); agreement is measured at that size, latency at ``--size``
   (224) and at the training size; both INT8 policies (``full``, ``dense``) are measured.
3. ``--families``: eager / ORT fp32 / ORT INT8 latency at batch 1 for one model per registered family
   (a model that does not export or quantize gets the reason instead of a number).

Timing: every variant gets the same input; rounds of ``--per-round`` calls rotate over the variants
``--rounds`` times so load from other processes hits all of them alike; medians and ratios of medians are
reported. Results: ``benchmarks/results/deploy_cpu.json``.

    python benchmarks/deploy_cpu.py [--threads 1] [--train-epochs 3] [--families]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import litevision as lv
from litevision.bench.timing import fixed_threads, summarize_loads, time_interleaved
from litevision.export.images import load_images
from litevision.export.onnx import export_onnx, ort_session
from litevision.export.quantize import POLICIES, quantize_int8
from litevision.models import (
    DataConfig,
    create_any_model,
    data_config_from_metadata,
    load_trained_model,
    resolve_data_config,
)
from litevision.utils.cpu import cpu_description

ROOT = Path(__file__).resolve().parent


LOADS: list[dict] = []  # the machine's load during every timed group (summarized in the JSON)


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[str, dict]:
    """Median / min / p90 ms per variant, timed in rotating rounds (rounds under foreign load left out)."""
    stats = time_interleaved(fns, rounds=rounds, per_round=per_round, warmup=3)
    LOADS.append(stats.load)
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


def train_briefly(name: str, size: int, epochs: int, work: Path) -> tuple[torch.nn.Module, DataConfig]:
    """``name`` trained from scratch with the ``quick`` recipe at ``size`` px for ``epochs`` epochs (reused)."""
    from litevision.engine import load_config, train

    run_dir = work / f"{name}-{size}px-{epochs}ep"
    weights = run_dir / "last.safetensors"
    if not weights.is_file():  # reuse an earlier run of this script with the same settings
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        cfg = load_config("quick", [f"model.name={name}", f"data.input_size={size}", "data.in_chans=3",
                                    "data.val_split=none", f"sched.epochs={epochs}", "run.progress=false",
                                    "run.tensorboard=false"])
        train(cfg, run_dir=run_dir)
    model, meta = load_trained_model(run_dir)
    return model.eval(), data_config_from_metadata(meta)


def deploy_vs_torchvision(threads: int, rounds: int, per_round: int, work: Path) -> dict:
    """Our deploy path against torchvision eager, and what the ONNX clean-up pass does to onnxruntime's speed:
    our export with the pass (the default), without it (dynamo's graph as written), and a plain TorchScript-based
    export of torchvision's model, at batch 1 and 8."""
    cfg = resolve_data_config("mobilenetv3_large_100")
    ours = lv.create_model("mobilenetv3_large_100").eval()
    fused = lv.fuse_model(copy.deepcopy(ours))
    path = export_onnx(copy.deepcopy(fused), work / "mnv3l_fp32.onnx", input_size=cfg.input_size).path
    raw = export_onnx(copy.deepcopy(fused), work / "mnv3l_fp32_raw.onnx", input_size=cfg.input_size, clean=False).path
    tv = create_any_model("tv:mobilenet_v3_large").eval()
    tv_path = work / "tv_mnv3l_legacy.onnx"
    torch.onnx.export(tv, (torch.randn(1, *cfg.input_size),), str(tv_path), dynamo=False, opset_version=18,
                      input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    sessions = {k: ort_session(v, threads=threads) for k, v in
                {"ours_onnxruntime_fp32": path, "ours_onnxruntime_fp32_no_cleanup": raw,
                 "tv_onnxruntime_legacy_export": tv_path}.items()}
    out: dict = {"input_size": list(cfg.input_size), "goal": 3.0}
    for batch in (1, 8):
        x = torch.randn(batch, *cfg.input_size)
        times = interleaved_medians({"tv_mobilenet_v3_large_eager": torch_fn(tv, x), "ours_eager_unfused":
                                     torch_fn(ours, x), **{k: ort_fn(s, x) for k, s in sessions.items()}},
                                    rounds, per_round)
        ms = {k: v["median_ms"] for k, v in times.items()}
        out[f"batch{batch}"] = {
            "times": times, "speedup_vs_tv_eager": ms["tv_mobilenet_v3_large_eager"] / ms["ours_onnxruntime_fp32"],
            "cleanup_speedup": ms["ours_onnxruntime_fp32_no_cleanup"] / ms["ours_onnxruntime_fp32"],
            "ours_vs_plain_tv_export": ms["tv_onnxruntime_legacy_export"] / ms["ours_onnxruntime_fp32"]}
    out["speedup_vs_tv_eager"] = out["batch1"]["speedup_vs_tv_eager"]
    out["met"] = out["speedup_vs_tv_eager"] >= 3.0
    return out


def _int8_files(model: torch.nn.Module, cfg: DataConfig, stem: str, work: Path) -> dict[str, Path]:
    """fp32 ONNX and the INT8 files of every policy for ``model`` at ``cfg``'s input size."""
    fp32 = export_onnx(lv.fuse_model(copy.deepcopy(model)), work / f"{stem}_fp32.onnx", input_size=cfg.input_size).path
    calib = load_images(None, count=64, cfg=cfg, split="train")  # calibration never sees the test images
    files = {"fp32": fp32}
    for policy in POLICIES:
        files[f"int8_{policy}"] = quantize_int8(fp32, work / f"{stem}_int8_{policy}.onnx", calib, policy=policy).path
    return files


def int8_vs_fp32(name: str, size: int, train_size: int, epochs: int, threads: int, rounds: int, per_round: int,
                 work: Path) -> dict:
    """INT8 vs fp32 onnxruntime for ``name``: agreement and accuracy on the 1,000 bundled test images at the
    size the model was trained at (``train_size``), latency at batch 1 at ``size`` and at ``train_size``.

    The model must make real decisions for agreement to mean anything (an untrained network's near-flat
    logits flip at the slightest error), so it is trained first; training at 224 px on a CPU would take an
    hour, hence a smaller training size. Kernel speed does not depend on the weights' values, so the
    latency at 224 px is measured on an export of the same weights at that size.
    """
    start = time.perf_counter()
    model, train_cfg = train_briefly(name, train_size, epochs, work)
    train_s = time.perf_counter() - start
    files = _int8_files(model, train_cfg, f"{name}_{train_size}", work)
    test = load_images(None, count=1000, cfg=train_cfg, split="test")
    labels = torch.tensor([lbl for _, lbl in _bundled_test()])[: len(test)].numpy()
    sessions = {k: ort_session(f, threads=threads) for k, f in files.items()}
    logits = {k: ort_logits(s, test) for k, s in sessions.items()}
    with torch.inference_mode():
        eager = torch.cat([model(test[i:i + 50]) for i in range(0, len(test), 50)]).numpy()
    out: dict = {"train_size": train_size, "train_epochs": epochs, "train_seconds": round(train_s, 1),
                 "fp32_top1": float((logits["fp32"].argmax(1) == labels).mean() * 100),
                 "fp32_vs_eager_max_abs_diff": float(np.abs(logits["fp32"] - eager).max()), "policies": {}}
    times = {train_size: interleaved_medians({k: ort_fn(s, test[:1]) for k, s in sessions.items()}, rounds, per_round)}
    if size != train_size:
        cfg = train_cfg.replace(input_size=(train_cfg.in_chans, size, size))
        x = torch.randn(1, *cfg.input_size)
        big = {k: ort_session(f, threads=threads) for k, f in _int8_files(model, cfg, f"{name}_{size}", work).items()}
        times[size] = interleaved_medians({k: ort_fn(s, x) for k, s in big.items()}, rounds, per_round)
    out["times"] = {f"{k}px": v for k, v in times.items()}
    for policy in POLICIES:
        key = f"int8_{policy}"
        agree = float((logits[key].argmax(1) == logits["fp32"].argmax(1)).mean() * 100)
        speed = {f"{k}px": t["fp32"]["median_ms"] / t[key]["median_ms"] for k, t in times.items()}
        out["policies"][policy] = {"top1": float((logits[key].argmax(1) == labels).mean() * 100),
                                   "agreement_with_fp32_pct": agree, "speedup_vs_fp32": speed,
                                   "met": speed[f"{size}px"] >= 1.2 and agree >= 99.0}
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

    reps: dict[str, str] = {}  # the lightest model of each family (by the paper's MACs)
    for n in lv.list_models(task="classification"):
        card = lv.get_model_card(n)
        best = reps.get(card.family)
        macs = card.figures.macs_g or float("inf")
        if best is None or macs < (lv.get_model_card(best).figures.macs_g or float("inf")):
            reps[card.family] = n
    rows = []
    for fam, name in sorted(reps.items()):
        card = lv.get_model_card(name)
        row: dict = {"family": fam, "model": name, "input_size": list(card.input_size)}
        rows.append(row)
        image_model = len(card.input_size) == 3
        size = resolve_data_config(name).input_size if image_model else tuple(card.input_size)
        model = lv.create_model(name).eval()
        c = count_complexity(model, size)
        row.update(params_m=c.params / 1e6, macs_g=c.macs / 1e9)
        x = torch.randn(1, *size)
        fns = {"eager": torch_fn(model, x)}
        try:
            fp32 = export_onnx(lv.fuse_model(copy.deepcopy(model)), work / f"fam_{name}.onnx", input_size=size).path
            fns["ort_fp32"] = ort_fn(ort_session(fp32, threads=threads), x)
            row["exportable"] = "yes"
            if image_model:
                calib = load_images(None, count=32, cfg=resolve_data_config(name), split="train")
            else:  # HybridSN takes hyperspectral patches: random calibration (speed only, no accuracy claim)
                calib = torch.randn(32, *size)
                row["note"] = "INT8 calibrated on random patches (latency only)"
            q = quantize_int8(fp32, work / f"fam_{name}_int8.onnx", calib)
            fns["ort_int8"] = ort_fn(ort_session(q.path, threads=threads), x)
        except ExportError as e:
            row["exportable"] = row.get("exportable") or f"no: {str(e)[:200]}"
            row["int8"] = f"failed: {str(e)[:200]}"
        times = interleaved_medians(fns, rounds, per_round)
        row["latency_ms"] = {k: v["median_ms"] for k, v in times.items()}
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for torch and onnxruntime")
    p.add_argument("--size", type=int, default=224, help="input size of the latency measurements")
    p.add_argument("--train-size", type=int, default=64, help="input size the INT8 models are trained and checked at")
    p.add_argument("--train-epochs", type=int, default=3, help="epochs on the bundled subset before quantizing")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--families", action="store_true", help="also the per-family latency table")
    p.add_argument("--only-families", action="store_true",
                   help="only the per-family table, merged into --output when it exists (its other parts kept)")
    p.add_argument("--work", default="/tmp/litevision-deploy-cpu", help="exports and training runs")
    p.add_argument("--output", default=str(ROOT / "results" / "deploy_cpu.json"))
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.output)
    result: dict = {"threads": args.threads, "torch": torch.__version__, "machine": cpu_description(),
                    "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.only_families:
        kept = json.loads(out.read_text()) if out.exists() else {}
        with fixed_threads(args.threads):
            kept["families"] = families(args.threads, args.rounds, args.per_round, work)
        kept["families_load"], kept["families_date"] = summarize_loads(LOADS), result["date"]
        out.write_text(json.dumps(kept, indent=2))
        print(f"wrote {out}")
        return
    with fixed_threads(args.threads):
        result["deploy_vs_torchvision"] = deploy_vs_torchvision(args.threads, args.rounds, args.per_round, work)
        print(json.dumps(result["deploy_vs_torchvision"], indent=1), flush=True)
        result["int8_vs_fp32"] = {}
        for name in ("resnet18", "mobilenetv3_large_100"):
            result["int8_vs_fp32"][name] = int8_vs_fp32(name, args.size, args.train_size, args.train_epochs,
                                                        args.threads, args.rounds, args.per_round, work)
            print(json.dumps({name: result["int8_vs_fp32"][name]}, indent=1), flush=True)
        if args.families:
            result["families"] = families(args.threads, args.rounds, args.per_round, work)
    import onnxruntime

    result["onnxruntime"] = onnxruntime.__version__
    result["load"] = summarize_loads(LOADS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
