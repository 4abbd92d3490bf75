"""``bench_model``: params, MACs, latency, throughput and peak memory of one model on several CPU backends.

Backends (all measured by the same loop, with the same inputs and thread count):

* ``eager``: PyTorch eager, NCHW, ``torch.inference_mode``;
* ``channels_last``: the same model and input in ``torch.channels_last`` memory format;
* ``compile``: ``torch.compile(dynamic=False)`` (inductor; needs a C++ compiler): a failure is reported
  as ``n/a`` with its reason instead of aborting the run;
* ``ort``: the fp32 ONNX export (see :mod:`litevision.export`) in onnxruntime;
* ``ort_int8``: the static-INT8 ONNX model (QDQ, per-channel, calibrated on real images).

The model is prepared for deploy first (``fuse=True``): ours with :func:`litevision.fuse_model`, peers
by folding Conv+BatchNorm with ``torch.fx`` where their code is traceable, so neither side is measured
with BatchNorm the other has folded away.

Per backend: one call at batch N measures peak memory (:mod:`litevision.bench.memory`), then latency at
batch 1 (``warmup`` untimed calls, ``iters`` timed calls: min / median / p90 / max / mean ms) and
throughput at batch N (``batch_iters`` timed calls; images/s = N / median batch time).

Detectors: ``eager`` times the whole detector (network, decoding and post-processing, as a user calls it);
``extra`` splits its batch-1 latency into ``network_ms`` (network and decoding) and ``postprocess_ms``
(score threshold, per-class top-k and NMS). ``ort`` runs the exported network with decoding (boxes and
scores, :mod:`litevision.export.detection`) and adds the same PyTorch post-processing to each call, so both
backends time the same job; INT8 is not offered for detectors.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from litevision.bench.complexity import count_complexity
from litevision.bench.memory import peak_rss_increase_mb
from litevision.bench.timing import TimingStats, fixed_threads, time_calls, timm_style_throughput
from litevision.errors import UserError
from litevision.export import (
    RAW_DETECTOR_OUTPUTS,
    export_onnx,
    load_images,
    load_model_for_deploy,
    ort_session,
    quantize_int8,
    quiet_torch,
)
from litevision.layers import fuse_model
from litevision.models import (
    DataConfig,
    Detector,
    DetectorExport,
    is_litevision_weights,
    parse_model_spec,
    resolve_data_config,
    select_detections,
)
from litevision.utils.cpu import load_warning, machine_load, usable_cpus

log = logging.getLogger(__name__)

BACKENDS = ("eager", "channels_last", "compile", "ort", "ort_int8")
DEFAULT_BACKENDS = ("eager", "channels_last", "ort", "ort_int8")


def default_threads() -> int:
    return usable_cpus()


@dataclass
class BenchResult:
    """One model on one backend. ``status`` is ``"ok"`` or ``"n/a"`` (then ``reason`` says why)."""

    model: str
    backend: str
    status: str
    input_size: tuple[int, int, int]
    batch_size: int
    threads: int
    params: int
    macs: int
    fused: bool
    reason: str = ""
    latency: TimingStats | None = None
    batch: TimingStats | None = None
    peak_mem_mb: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def throughput(self) -> float | None:
        """Images per second at batch N (from the median batch time)."""
        return None if self.batch is None else 1e3 * self.batch_size / self.batch.median_ms

    def to_dict(self) -> dict:
        return {
            "model": self.model, "backend": self.backend, "status": self.status, "reason": self.reason,
            "input_size": list(self.input_size), "batch_size": self.batch_size, "threads": self.threads,
            "params": self.params, "macs": self.macs, "fused": self.fused,
            "latency_ms": self.latency.to_dict() if self.latency else None,
            "batch_ms": self.batch.to_dict() if self.batch else None,
            "throughput_ips": self.throughput, "peak_mem_mb": self.peak_mem_mb, **self.extra,
        }

    def to_row(self) -> dict:
        """Flat dict for CSV."""
        lat, bat = self.latency, self.batch
        return {
            "model": self.model, "backend": self.backend, "status": self.status, "reason": self.reason,
            "input_size": "x".join(map(str, self.input_size)), "batch_size": self.batch_size,
            "threads": self.threads, "params": self.params, "macs": self.macs, "fused": self.fused,
            "latency_median_ms": _r(lat and lat.median_ms), "latency_p90_ms": _r(lat and lat.p90_ms),
            "latency_min_ms": _r(lat and lat.min_ms), "latency_max_ms": _r(lat and lat.max_ms),
            "batch_median_ms": _r(bat and bat.median_ms), "batch_min_ms": _r(bat and bat.min_ms),
            "batch_max_ms": _r(bat and bat.max_ms), "throughput_ips": _r(self.throughput),
            "peak_mem_mb": _r(self.peak_mem_mb),
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def prepare_for_deploy(model: nn.Module, spec: str) -> tuple[nn.Module, bool]:
    """Fold BatchNorm for inference: ours with ``fuse_model``, peers with ``torch.fx`` where traceable.

    Returns the model and whether BatchNorm was folded (or none was left to fold).
    """
    model = fuse_model(model)
    if parse_model_spec(spec).source == "litevision" or not _has_batchnorm(model):
        return model, True
    from torch.fx.experimental.optimization import fuse as fx_fuse

    try:
        fused = fx_fuse(model)
    except Exception:  # not symbolically traceable: measure it with BatchNorm
        return model, False
    return fused, not _has_batchnorm(fused)


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


Runner = Callable[[], object]


def bench_model(
    spec: str,
    *,
    backends: Sequence[str] = DEFAULT_BACKENDS,
    input_size: tuple[int, ...] | None = None,
    in_chans: int | None = None,
    batch_size: int = 32,
    threads: int | None = None,
    warmup: int = 10,
    iters: int = 50,
    batch_iters: int = 10,
    num_classes: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    model: nn.Module | None = None,
    data_config: DataConfig | None = None,
    fuse: bool = True,
    calibration: str | os.PathLike[str] | None = None,
    calibration_images: int = 32,
    exporter: str = "dynamo",
    crosscheck: bool = False,
) -> list[BenchResult]:
    """Benchmark ``spec`` (litevision name, ``timm:<name>``, ``tv:<name>``) on ``backends``.

    ``input_size`` ((H, W) or (C, H, W)) and ``in_chans`` default to the model card's. ``model`` passes an
    already-built model (e.g. trained) instead of building ``spec`` with random weights, ``data_config`` its
    input size and normalization (default: the card's). ``calibration``:
    images for the INT8 backend (folder, dataset name; default the bundled subset). ``crosscheck`` adds
    timm's benchmark loop at batch N to the eager result (``extra["timm_style"]``).
    """
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise UserError(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    if batch_size < 1 or iters < 1 or batch_iters < 1:
        raise UserError("batch size and iteration counts must be >= 1")
    threads = threads or default_threads()
    if model is None:
        if checkpoint is None and is_litevision_weights(spec):  # a run folder / weights file as the model
            spec, checkpoint = None, spec
        model, cfg, spec = load_model_for_deploy(spec, checkpoint=checkpoint, num_classes=num_classes,
                                                 in_chans=in_chans, input_size=input_size)
    else:
        model = copy.deepcopy(model)  # fusing and channels-last conversion must not touch the caller's model
        cfg = data_config or resolve_data_config(spec, input_size, in_chans=in_chans)
    model = model.eval()
    complexity = count_complexity(model, cfg.input_size)
    fused = False
    if fuse:
        model, fused = prepare_for_deploy(model, spec)
    results = []
    load = machine_load()  # what else the machine is doing: recorded with every result, warned about
    warning = load_warning(load, threads)
    if warning:
        log.warning("bench %s: %s", spec, warning)
    with fixed_threads(threads), tempfile.TemporaryDirectory(prefix="litevision-bench-") as tmp:
        for backend in backends:
            log.info("bench %s: %s (%d thread(s), batch 1 and %d)", spec, backend, threads, batch_size)
            base = BenchResult(model=spec, backend=backend, status="ok", input_size=cfg.input_size,
                               batch_size=batch_size, threads=threads, params=complexity.params, macs=complexity.macs,
                               fused=fused, extra={"load": {**load, "warning": warning}})
            try:
                make = _runner_factory(backend, model, cfg, threads, Path(tmp), calibration, calibration_images,
                                       exporter)
            except Exception as e:  # the backend cannot run this model: report, keep going
                base.status, base.reason = "n/a", _reason(e)
                results.append(base)
                continue
            try:
                _measure(base, make, cfg, batch_size, warmup, iters, batch_iters, compiled=backend == "compile")
                if isinstance(model, Detector) and backend == "eager":
                    base.extra.update(detector_split_ms(model, cfg, warmup=warmup, iters=iters))
                if crosscheck and backend == "eager":
                    run = make(batch_size)
                    base.extra["timm_style"] = timm_style_throughput(run, batch_size, warmup=max(3, warmup // 2),
                                                                     iters=batch_iters)
            except Exception as e:
                base.status, base.reason = "n/a", _reason(e)
            results.append(base)
    return results


def detector_split_ms(model: Detector, cfg: DataConfig, *, warmup: int, iters: int) -> dict[str, float]:
    """Median batch-1 milliseconds of a detector's network (with decoding) and of its post-processing."""
    x = torch.randn(1, *cfg.input_size, generator=torch.Generator().manual_seed(0))
    size = (int(cfg.input_size[1]), int(cfg.input_size[2]))
    with torch.inference_mode():
        raw = model.forward_raw(x)

        def network() -> object:
            return model.forward_raw(x)

        def post() -> object:
            return model.postprocess(raw, size)

        return {"network_ms": round(time_calls(network, warmup=warmup, iters=iters).median_ms, 4),
                "postprocess_ms": round(time_calls(post, warmup=warmup, iters=iters).median_ms, 4)}


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def _measure(result: BenchResult, make: Callable[[int], Runner], cfg: DataConfig, batch_size: int, warmup: int,
             iters: int, batch_iters: int, *, compiled: bool) -> None:
    run_batch = make(batch_size)
    if compiled:  # the first call compiles: measure memory on the second
        with quiet_torch():
            run_batch()
    result.peak_mem_mb = peak_rss_increase_mb(run_batch)
    result.batch = time_calls(run_batch, warmup=max(1, warmup // 4), iters=batch_iters)
    run_one = make(1)
    result.latency = time_calls(run_one, warmup=warmup, iters=iters)


def _runner_factory(backend: str, model: nn.Module, cfg: DataConfig, threads: int, tmp: Path,
                    calibration: str | os.PathLike[str] | None, calibration_images: int,
                    exporter: str) -> Callable[[int], Runner]:
    """``make(batch) -> run()``: the input is created outside the timed call."""
    gen = torch.Generator().manual_seed(0)

    def data(batch: int) -> torch.Tensor:
        return torch.randn(batch, *cfg.input_size, generator=gen)

    if backend in ("eager", "channels_last", "compile"):
        net = model
        if backend == "channels_last":
            net = copy.deepcopy(model).to(memory_format=torch.channels_last)
        elif backend == "compile":
            net = torch.compile(copy.deepcopy(model), dynamic=False)
            with torch.inference_mode(), quiet_torch():
                net(data(1))  # compile now so a failure is reported as n/a with its reason

        def make_torch(batch: int) -> Runner:
            x = data(batch)
            if backend == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)

            def run() -> object:
                with torch.inference_mode():
                    return net(x)

            return run

        return make_torch

    path = tmp / "fp32.onnx"
    detector = isinstance(model, Detector)
    if detector and backend == "ort_int8":
        raise UserError("INT8 is not offered for detectors")
    if not path.exists():  # exported once, shared by the fp32 and INT8 backends
        if detector:
            export_onnx(DetectorExport(copy.deepcopy(model), cfg.input_size[1:]), path, input_size=cfg.input_size,
                        exporter=exporter, dynamic_hw=False, output_names=RAW_DETECTOR_OUTPUTS)
        else:
            export_onnx(copy.deepcopy(model), path, input_size=cfg.input_size, exporter=exporter)
    if backend == "ort_int8":
        calib = load_images(calibration, count=calibration_images, cfg=cfg, split="train")
        path = quantize_int8(path, tmp / "int8.onnx", calib).path
    session = ort_session(path, threads=threads)
    input_name = session.get_inputs()[0].name

    def make_ort(batch: int) -> Runner:
        feed = {input_name: data(batch).numpy()}
        size = (int(cfg.input_size[1]), int(cfg.input_size[2]))

        def run() -> object:
            out = session.run(None, feed)
            if detector:  # the same post-processing as the eager detector
                boxes, scores = (torch.from_numpy(o) for o in out)
                return [select_detections(b, s, size, model.post) for b, s in zip(boxes, scores)]
            return out

        return run

    return make_ort


def bench_models(specs: Sequence[str], **kwargs: object) -> list[BenchResult]:
    """:func:`bench_model` over several models with the same settings."""
    return [r for spec in specs for r in bench_model(spec, **kwargs)]  # type: ignore[arg-type]


def write_results(results: Sequence[BenchResult], output: str | os.PathLike[str]) -> list[Path]:
    """Write ``results`` as JSON (full statistics) and CSV (one flat row per model × backend).

    ``output`` is a file ending in ``.json`` or ``.csv`` (that format only) or a directory (both,
    ``bench.json`` and ``bench.csv``).
    """
    out = Path(output)
    if out.suffix in (".json", ".csv"):
        out.parent.mkdir(parents=True, exist_ok=True)
        paths = [out]
    else:
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "bench.json", out / "bench.csv"]
    for path in paths:
        if path.suffix == ".json":
            path.write_text(json.dumps([r.to_dict() for r in results], indent=2))
        else:
            rows = [r.to_row() for r in results]
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["model"])
                writer.writeheader()
                writer.writerows(rows)
    return paths
