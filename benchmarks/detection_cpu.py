"""CPU latency of the detectors, with post-processing, against torchvision's SSDLite in the same run.

1. ``ssdlite320_mobilenetv3_large`` against torchvision's ``ssdlite320_mobilenet_v3_large`` with the same
   weights (torchvision's state dict loaded into ours, detections checked equal first), batch 1, 320x320:
   torchvision eager (its transform's normalization and resize, network, post-processing), ours eager
   (normalization, fused network, the same post-processing), ours in onnxruntime (the exported network with
   decoding, then the same PyTorch post-processing). Targets: ours eager <= 1.05x torchvision's latency;
   onnxruntime >= 2x faster than our eager.
2. Every registered detector at its card's size: network (with decoding) and post-processing timed apart,
   eager and onnxruntime.

Weights are random with BatchNorm statistics set so the activations are not degenerate. With random
weights every class scores about 1 / (classes + 1) at every default box, above SSDLite's 0.001 threshold: the
post-processing does its worst case (300 candidates per class into NMS). Both sides do that same work; a
trained model's post-processing is far cheaper, so the "trained-like" rows also time it with the score
threshold raised to 0.2 (few candidates).

Every case is timed in interleaved rounds (:func:`litevision.bench.timing.time_interleaved`: foreign CPU load
recorded per round, loaded rounds left out); run it alone.

    python benchmarks/detection_cpu.py            # -> benchmarks/results/detection_cpu.json
    python benchmarks/detection_cpu.py --quick --output /tmp/det.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

import litevision as lv
from litevision.bench.timing import fixed_threads, summarize_loads, time_interleaved
from litevision.export import RAW_DETECTOR_OUTPUTS, export_onnx, ort_session
from litevision.models import DetectorExport, select_detections
from litevision.utils.cpu import cpu_description

TARGETS = {"ours_eager_vs_tv_eager_latency": 1.05, "ort_speedup_vs_our_eager": 2.0}
LOADS: list[dict] = []


def _randomize_bn(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def _ort_runner(model: lv.models.Detector, size: tuple[int, int], tmp: Path, threads: int):
    path = tmp / f"{type(model).__name__}_{size[0]}.onnx"
    export_onnx(DetectorExport(copy.deepcopy(model), size).eval(), path, input_size=(3, *size), exporter="legacy",
                dynamic_hw=False, output_names=RAW_DETECTOR_OUTPUTS)
    session = ort_session(path, threads=threads)
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        boxes, scores = (torch.from_numpy(o) for o in session.run(None, {name: x.numpy()}))
        return [select_detections(b, s, size, model.post) for b, s in zip(boxes, scores)]

    return run


def _timed(fns: dict, rounds: int) -> dict[str, float]:
    stats = time_interleaved(fns, rounds=rounds, warmup=3)
    LOADS.append(stats.load)
    return {n: round(s.median_ms, 3) for n, s in stats.items()}


def torchvision_pair(rounds: int, threads: int, tmp: Path) -> dict:
    torch.manual_seed(0)
    tv = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                    num_classes=91).eval()
    _randomize_bn(tv)
    ours = lv.create_model("ssdlite320_mobilenetv3_large", num_classes=90)
    lv.load_checkpoint(ours, tv.state_dict())
    image = torch.rand(3, 320, 320, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():  # checked before fusing: with random weights all 300 scores are ~1/91, and
        expected, got = tv([image])[0], ours.eval()(((image - 0.5) / 0.5)[None])[0]  # fusion's 1e-6 reorders ties
    same = bool(torch.equal(expected["scores"], got["scores"]) and torch.equal(expected["labels"], got["labels"] + 1)
                and torch.equal(expected["boxes"], got["boxes"]))
    ours = lv.fuse_model(ours)
    out: dict = {"same_detections": same, "detections": int(got["scores"].numel())}
    ort_run = _ort_runner(ours, (320, 320), tmp, threads)
    x = ((image - 0.5) / 0.5)[None]
    for label, thresh in (("random_weights_worst_case", 0.001), ("trained_like_score_0.2", 0.2)):
        tv.score_thresh = thresh
        ours.set_postprocess(score_thresh=thresh)

        def tv_eager() -> object:
            with torch.inference_mode():
                return tv([image])

        def ours_eager() -> object:
            with torch.inference_mode():
                return ours((image[None] - 0.5) / 0.5)

        def ours_ort() -> object:
            return ort_run(x)

        ms = _timed({"torchvision_eager": tv_eager, "ours_eager": ours_eager, "ours_onnxruntime": ours_ort}, rounds)
        out[label] = {"ms": ms, "ours_eager_vs_tv_eager_latency": round(ms["ours_eager"] / ms["torchvision_eager"], 3),
                      "ort_speedup_vs_our_eager": round(ms["ours_eager"] / ms["ours_onnxruntime"], 3)}
        print(label, out[label], flush=True)
    return out


def every_detector(rounds: int, threads: int, tmp: Path, names: list[str]) -> dict:
    rows = {}
    for name in names:
        rows[name] = _one_detector(name, rounds, threads, tmp)
        print(name, rows[name], flush=True)
    return rows


def _one_detector(name: str, rounds: int, threads: int, tmp: Path) -> dict:
    torch.manual_seed(0)
    model = lv.fuse_model(lv.create_model(name, num_classes=10).eval())
    _randomize_bn(model)
    size = tuple(lv.get_model_card(name).input_size[1:])
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    model.set_postprocess(score_thresh=0.2)
    with torch.inference_mode():
        raw = model.forward_raw(x)
    ort_run = _ort_runner(model, size, tmp, threads)

    def network() -> object:
        with torch.inference_mode():
            return model.forward_raw(x)

    def post() -> object:
        with torch.inference_mode():
            return model.postprocess(raw, size)

    def full() -> object:
        with torch.inference_mode():
            return model(x)

    ms = _timed({"eager_network": network, "eager_postprocess": post, "eager_total": full,
                 "onnxruntime_total": lambda: ort_run(x)}, rounds)
    c = lv.count_complexity(model, (3, *size))
    return {"input": list(size), "params_m": round(c.params / 1e6, 3), "macs_g": round(c.macs / 1e9, 3), "ms": ms,
            "ort_speedup": round(ms["eager_total"] / ms["onnxruntime_total"], 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="8 rounds, two detectors")
    p.add_argument("--output", default=str(Path(__file__).parent / "results" / "detection_cpu.json"))
    args = p.parse_args()
    rounds = 8 if args.quick else args.rounds
    names = ["ssdlite320_mobilenetv3_large", "shufflenetv2_100_nano"] if args.quick else \
        lv.list_models(task="detection")
    start = time.time()
    with fixed_threads(args.threads), tempfile.TemporaryDirectory() as tmp:
        pair = torchvision_pair(rounds, args.threads, Path(tmp))
        detectors = every_detector(rounds, args.threads, Path(tmp), names)
    met = {k: [pair[c][k] <= v if k.startswith("ours_eager") else pair[c][k] >= v
               for c in ("random_weights_worst_case", "trained_like_score_0.2")] for k, v in TARGETS.items()}
    result = {
        "meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
                 "torchvision": torchvision.__version__, "threads": args.threads, "rounds": rounds,
                 "cpu": cpu_description(), "cpus": os.cpu_count(), "seconds": round(time.time() - start, 1),
                 "load": summarize_loads(LOADS), "command": " ".join(sys.argv),
                 "timing": "median over interleaved rounds (rounds under foreign CPU load left out)"},
        "targets": TARGETS, "torchvision_ssdlite": pair, "targets_met": met, "detectors": detectors,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}; targets met: {met}; load trusted: {result['meta']['load']['trusted']}")


if __name__ == "__main__":
    main()
