"""Quantization-aware fine-tuning (QAT, nncf) vs our post-training INT8 (PTQ) on MobileNetV3-Large, measured.

Protocol (one run; issue 17 item 3: QAT is kept only if it measures better than PTQ):

1. ``mobilenetv3_large_100`` trained from scratch with the ``quick`` recipe, ``--train-epochs`` (3) at
   ``--train-size`` (64) px on the bundled Fashion-MNIST subset (grey as RGB), via ``deploy_cpu.train_briefly``
   (reused when ``--train-work`` already holds that run, e.g. ``/tmp/litevision-deploy-cpu``).
2. PTQ: ``deploy_cpu._int8_files``, i.e. ``litevision.export.quantize.quantize_int8`` on the fused fp32 ONNX
   (static QDQ, per-channel int8 weights, uint8 activations, percentile calibration on 64 training images,
   squeeze-excite gates float), policies ``full`` (the reference) and ``dense``.
3. QAT: the same trained weights, BatchNorm folded (``litevision.fuse_model``: onnxruntime cannot fold a BN that
   follows quantized weights), then ``nncf.quantize`` on the same 64 calibration images (preset ``mixed``:
   symmetric per-channel int8 weights and asymmetric activations like our PTQ; per-tensor activations, which
   onnxruntime's QDQ kernels need; 7-bit weights only on CPUs without VNNI, as ``quantize_int8`` decides), then
   ``--qat-epochs`` (1) of fine-tuning on the subset's training split (the recipe's augmentation and label
   smoothing, AdamW ``--lr`` 1e-4 with cosine decay, no weight decay). Variants: ``default`` (nncf's own
   squeeze-excite handling: its SE ignored pattern) and ``se_float`` (the whole SE branch, gate output
   included, in nncf's ignored scope, as our PTQ does). Export: nncf's quantizers in their
   ``ONNX_QUANTIZE_DEQUANTIZE_PAIRS`` export mode through the TorchScript ONNX exporter, i.e. standard
   ``QuantizeLinear``/``DequantizeLinear`` pairs where nncf placed its quantizers (``nncf.strip`` would need
   ``torchao``). Hybrid (``qat_*_weights_ptq``): the fine-tuned float weights (quantizers dropped) through our
   PTQ, i.e. onnxruntime's operator placement. Controls: each nncf model before fine-tuning
   (``*_no_finetune``: nncf's PTQ alone) and the fp32 model fine-tuned the same way without fake quantization
   (``fp32_finetuned``, eager: what the extra epoch alone does to accuracy and agreement; ``fp32_finetuned_ptq``:
   that model through our PTQ, the control for the hybrid).
4. Every ONNX file on the 1,000 bundled test images at the training size: top-1 and top-1 agreement with the
   fp32 ONNX; onnxruntime latency at batch 1 (``--threads`` 1) at the training size and at ``--size`` (224),
   all variants interleaved with ``time_interleaved``. Timings taken while other jobs use the machine are
   flagged (``timed_under_load``): agreement and accuracy are the point here.

Verdict rule: QAT is "kept" only if a variant agrees with fp32 more often than PTQ ``full`` (exact McNemar test on
the paired per-image outcomes, p < 0.05: 1,000 images resolve little), has at least its top-1, and is not slower
than it by more than 10% at ``--size``.

nncf is not a litevision dependency; install it next to the project's torch first::

    .venv/bin/pip install nncf==3.4.0
    python benchmarks/qat_vs_ptq.py [--train-work /tmp/litevision-deploy-cpu] [--qat-epochs 1] [--lr 1e-4]

Results: ``docs/results/qat_vs_ptq.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from deploy_cpu import _bundled_test, _int8_files, load_images, ort_logits, train_briefly  # noqa: E402

import litevision as lv  # noqa: E402
from litevision.bench.timing import fixed_threads, summarize_loads, time_interleaved  # noqa: E402
from litevision.export.onnx import export_onnx, ort_session  # noqa: E402
from litevision.export.quantize import quantize_int8, se_gate_nodes  # noqa: E402
from litevision.models import DataConfig  # noqa: E402
from litevision.utils.cpu import cpu_description, cpu_lacks_vnni  # noqa: E402

MODEL = "mobilenetv3_large_100"
VARIANTS = ("default", "se_float")
SE_SCOPE = r".*/se/.*"  # nncf node names of the squeeze-excite branch: "<block>/se/{fc1,act,fc2,gate,mul}/..."
LOADS: list[dict] = []


def nncf_quantize(fused: torch.nn.Module, calib: torch.Tensor, variant: str) -> torch.nn.Module:
    """``fused`` with nncf's fake quantizers, calibrated on ``calib``."""
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )

    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.ENABLE if cpu_lacks_vnni() else OverflowFix.DISABLE,
        activations_quantization_params=QuantizationParameters(per_channel=False))
    ignored = nncf.IgnoredScope(patterns=[SE_SCOPE]) if variant == "se_float" else None
    dataset = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    return nncf.quantize(fused, dataset, preset=nncf.QuantizationPreset.MIXED, subset_size=len(calib),
                         ignored_scope=ignored, advanced_parameters=advanced)


def quantizers(model: torch.nn.Module) -> dict[str, object]:
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer

    return {n: m for n, m in get_hook_storage(model).named_hooks() if isinstance(m, BaseQuantizer)}


def describe_quantizers(model: torch.nn.Module) -> dict:
    """What nncf quantized: counts by kind, and the squeeze-excite tensors it left quantized."""
    kinds: Counter = Counter()
    for name, q in quantizers(model).items():
        what = "weight" if name.startswith("pre_hooks") else "activation"
        kinds[f"{what} {type(q).__name__.removesuffix('Quantizer').lower()} "
              f"{'per-channel' if q.per_channel else 'per-tensor'} {q.num_bits}-bit"] += 1  # type: ignore[attr-defined]
    se = sorted(n.split(".", 1)[1].rsplit("__", 1)[0] for n in quantizers(model) if "/se/" in n)
    return {"quantizers": dict(kinds), "se_quantized_tensors": se}


def finetune(model: torch.nn.Module, cfg: DataConfig, epochs: int, lr: float, first_epoch: int, seed: int) -> float:
    """``epochs`` epochs over the bundled training split (quick recipe's augmentation); returns seconds."""
    from litevision.data import build_dataset
    from litevision.data.pipeline import train_dataset
    from litevision.engine import load_config

    recipe = load_config("quick", [])
    data = train_dataset(build_dataset("fashion_mnist_subset"), cfg, recipe.aug, seed=seed)
    batch = recipe.data.batch_size
    steps = epochs * (len(data) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.aug.smoothing)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for epoch in range(first_epoch, first_epoch + epochs):
        keys = [(epoch, int(i)) for i in torch.randperm(len(data), generator=gen)]  # fresh augmentation per epoch
        loader = torch.utils.data.DataLoader(data, batch_size=batch, sampler=keys, drop_last=True)
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return time.perf_counter() - start


def export_qdq(model: torch.nn.Module, path: Path, cfg: DataConfig) -> Path:
    """nncf's quantizers as standard QuantizeLinear/DequantizeLinear pairs, batch and H/W dynamic."""
    import warnings

    from nncf.torch.quantization.layers import QuantizerExportMode

    for q in quantizers(model).values():
        q.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(model, (torch.zeros(1, *cfg.input_size),), str(path), dynamo=False, opset_version=18,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}})
    return path


def weights_ptq(qmodel: torch.nn.Module, fused: torch.nn.Module, calib: torch.Tensor, stem: Path,
                cfg: DataConfig) -> Path:
    """``qmodel``'s float weights (nncf's quantizers dropped) through our PTQ: onnxruntime's QDQ placement."""
    plain = copy.deepcopy(fused)
    plain.load_state_dict({k: v for k, v in qmodel.state_dict().items() if k in plain.state_dict()})
    fp32 = export_onnx(plain, f"{stem}_weights_fp32.onnx", input_size=cfg.input_size).path
    return quantize_int8(fp32, f"{stem}_weights_ptq.onnx", calib, policy="full").path


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value for paired hits ``a`` vs ``b`` (boolean per image)."""
    from scipy.stats import binomtest

    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    return 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b).pvalue)


def graph_summary(path: Path) -> dict:
    """Op counts, how many Conv/Gemm take DequantizeLinear weights, and the Q/DQ nodes on squeeze-excite branches
    (from the pooling to the gating Mul, both ends included: our PTQ quantizes the pooled tensor and the gate
    output that enters the Mul, keeping the two 1x1 convolutions and the hard-sigmoid float)."""
    import onnx

    proto = onnx.load(str(path))
    nodes = proto.graph.node
    producer = {o: n for n in nodes for o in n.output}
    dense = [n for n in nodes if n.op_type in ("Conv", "Gemm")]
    qweights = sum(1 for n in dense if n.input[1] in producer and producer[n.input[1]].op_type == "DequantizeLinear")
    gate = se_gate_nodes(proto)
    return {"ops": dict(Counter(n.op_type for n in nodes)), "conv_gemm": len(dense), "int8_weight_conv_gemm": qweights,
            "se_branch_qdq_nodes_incl_ends": sum(1 for n in nodes if n.name in gate and "Linear" in n.op_type)}


def eager_logits(model: torch.nn.Module, x: torch.Tensor, batch: int = 50) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()


def ort_fn(session: object, x: torch.Tensor) -> Callable[[], object]:
    feed = {session.get_inputs()[0].name: x.numpy()}  # type: ignore[attr-defined]
    return lambda: session.run(None, feed)  # type: ignore[attr-defined]


def latency(files: dict[str, Path], x: torch.Tensor, threads: int, rounds: int, per_round: int) -> dict:
    sessions = {k: ort_session(f, threads=threads) for k, f in files.items()}
    stats = time_interleaved({k: ort_fn(s, x) for k, s in sessions.items()}, rounds=rounds, per_round=per_round,
                             warmup=3)
    LOADS.append(stats.load)
    return {"load": stats.load, **{k: {"median_ms": v.median_ms, "min_ms": v.min_ms, "p90_ms": v.p90_ms, "n": v.iters}
                                   for k, v in stats.items()}}


def versions() -> dict:
    import nncf
    import onnx
    import onnxruntime
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "nncf": nncf.__version__,
            "numpy": np.__version__, "litevision": lv.__version__}


def run(args: argparse.Namespace) -> dict:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    model, cfg = train_briefly(MODEL, args.train_size, args.train_epochs, Path(args.train_work or args.work))
    times["train_or_reuse_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    files = _int8_files(model, cfg, f"{MODEL}_{args.train_size}", work)  # fp32, int8_full, int8_dense
    times["ptq_s"] = time.perf_counter() - t
    calib = load_images(None, count=64, cfg=cfg, split="train")  # the same 64 images PTQ calibrates on
    test = load_images(None, count=1000, cfg=cfg, split="test")
    labels = np.array([lbl for _, lbl in _bundled_test()])[: len(test)]

    fused = lv.fuse_model(copy.deepcopy(model))
    details: dict = {}
    torch_logits: dict[str, np.ndarray] = {}
    for variant in args.variants:
        torch.manual_seed(args.seed)
        t = time.perf_counter()
        qmodel = nncf_quantize(copy.deepcopy(fused), calib, variant)
        times[f"nncf_quantize_{variant}_s"] = time.perf_counter() - t
        details[variant] = describe_quantizers(qmodel)
        files[f"nncf_{variant}_no_finetune"] = export_qdq(qmodel, work / f"nncf_{variant}_no_finetune.onnx", cfg)
        files[f"nncf_{variant}_no_finetune_weights_ptq"] = weights_ptq(qmodel, fused, calib,
                                                                       work / f"nncf_{variant}_no_finetune", cfg)
        times[f"qat_finetune_{variant}_s"] = finetune(qmodel, cfg, args.qat_epochs, args.lr, args.train_epochs,
                                                      args.seed)
        t = time.perf_counter()
        torch_logits[f"qat_{variant}"] = eager_logits(qmodel, test)
        files[f"qat_{variant}"] = export_qdq(qmodel, work / f"qat_{variant}.onnx", cfg)
        times[f"qat_export_{variant}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        files[f"qat_{variant}_weights_ptq"] = weights_ptq(qmodel, fused, calib, work / f"qat_{variant}", cfg)
        times[f"qat_weights_ptq_{variant}_s"] = time.perf_counter() - t
        print(f"{variant}: quantized and fine-tuned", json.dumps(times), flush=True)

    control = copy.deepcopy(fused)
    times["fp32_finetune_s"] = finetune(control, cfg, args.qat_epochs, args.lr, args.train_epochs, args.seed)
    control_logits = eager_logits(control, test)
    files["fp32_finetuned_ptq"] = weights_ptq(control, fused, calib, work / "fp32_finetuned", cfg)

    t = time.perf_counter()
    logits = {k: ort_logits(ort_session(f, threads=args.threads), test) for k, f in files.items()}
    times["evaluate_s"] = time.perf_counter() - t
    ref = logits["fp32"].argmax(1)

    def scores(out: np.ndarray) -> dict:
        return {"top1": float((out.argmax(1) == labels).mean() * 100),
                "agreement_with_fp32_pct": float((out.argmax(1) == ref).mean() * 100)}

    results = {k: {**scores(v), "graph": graph_summary(files[k])} for k, v in logits.items()}
    for variant in args.variants:
        key = f"qat_{variant}"
        results[key]["nncf"] = details[variant]
        results[key]["onnx_vs_torch_fakequant_agreement_pct"] = float(
            (logits[key].argmax(1) == torch_logits[key].argmax(1)).mean() * 100)
    results["fp32_finetuned"] = {**scores(control_logits), "runtime": "eager torch (control, not exported)"}

    t = time.perf_counter()
    timed = [k for k in files if k in ("fp32", "int8_full", "int8_dense") or k.startswith("qat_")]
    lat = {f"{args.train_size}px": latency({k: files[k] for k in timed}, test[:1], args.threads, args.rounds,
                                           args.per_round)}
    if args.size != args.train_size:
        big_cfg = cfg.replace(input_size=(cfg.in_chans, args.size, args.size))
        big = _int8_files(model, big_cfg, f"{MODEL}_{args.size}", work)  # PTQ re-calibrated at that size
        big_files = {**big, **{k: files[k] for k in timed if k.startswith("qat_")}}  # all exports: dynamic H/W
        lat[f"{args.size}px"] = latency(big_files, torch.randn(1, *big_cfg.input_size), args.threads, args.rounds,
                                        args.per_round)
    times["latency_s"] = time.perf_counter() - t
    for size, group in lat.items():
        for k in timed:
            results[k].setdefault("speedup_vs_fp32", {})[size] = group["fp32"]["median_ms"] / group[k]["median_ms"]

    ptq = results["int8_full"]
    verdict = {}
    for variant in [k for k in timed if k.startswith("qat_")]:
        q = results[variant]
        speed = q["speedup_vs_fp32"][f"{args.size}px"] / ptq["speedup_vs_fp32"][f"{args.size}px"]
        agree_p = mcnemar_p(logits[variant].argmax(1) == ref, logits["int8_full"].argmax(1) == ref)
        verdict[variant] = {
            "agreement_delta_vs_ptq_pts": q["agreement_with_fp32_pct"] - ptq["agreement_with_fp32_pct"],
            "agreement_mcnemar_p": agree_p, "top1_delta_vs_ptq_pts": q["top1"] - ptq["top1"],
            "top1_mcnemar_p": mcnemar_p(logits[variant].argmax(1) == labels, logits["int8_full"].argmax(1) == labels),
            f"speed_vs_ptq_{args.size}px": speed,
            "beats_ptq": q["agreement_with_fp32_pct"] > ptq["agreement_with_fp32_pct"] and agree_p < 0.05
            and q["top1"] >= ptq["top1"] and speed >= 0.9}
    kept = any(v["beats_ptq"] for v in verdict.values())
    return {"results": results, "latency": lat, "verdict": verdict, "kept": kept,
            "seconds": {k: round(v, 1) for k, v in times.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for torch and onnxruntime")
    p.add_argument("--size", type=int, default=224, help="second input size of the latency measurements")
    p.add_argument("--train-size", type=int, default=64, help="input size of training, fine-tuning and evaluation")
    p.add_argument("--train-epochs", type=int, default=3, help="epochs of fp32 training before quantizing")
    p.add_argument("--qat-epochs", type=int, default=1, help="epochs of quantization-aware fine-tuning")
    p.add_argument("--lr", type=float, default=1e-4, help="peak AdamW learning rate of the fine-tuning (cosine)")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                   help="QAT variants: nncf's squeeze-excite handling, or the whole SE branch float")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--work", default="/tmp/litevision-qat", help="ONNX files (and the training run, by default)")
    p.add_argument("--train-work", default=None,
                   help="where the fp32 training run is made or reused (default --work; deploy_cpu uses "
                        "/tmp/litevision-deploy-cpu)")
    p.add_argument("--quiet-machine", action="store_true",
                   help="no other jobs ran during the timings (else the JSON marks them timed_under_load)")
    p.add_argument("--output", default=str(ROOT.parent / "docs" / "results" / "qat_vs_ptq.json"))
    args = p.parse_args()
    os.environ.setdefault("NNCF_CI", "1")  # nncf's switch that turns its usage telemetry off
    start = time.perf_counter()
    with fixed_threads(args.threads):
        result = run(args)
    out = {"model": MODEL, "dataset": "fashion_mnist_subset (bundled: 5,000 train / 1,000 test)",
           "protocol": {k: v for k, v in vars(args).items() if k not in ("output",)},
           "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": cpu_description(), "versions": versions(),
           "timed_under_load": not args.quiet_machine, "load": summarize_loads(LOADS), **result,
           "total_seconds": round(time.perf_counter() - start, 1)}
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("verdict", "kept", "seconds")}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
