"""``compare_models``: several models on one test set, one input size and one metric code, into one report.

Each entry is a model spec (litevision name, ``timm:<name>``, ``tv:<name>``) or a litevision run folder /
weights file. A spec is trained on the spot with one recipe (``train=True``), loaded from
``checkpoints[spec]``, or - with a note in the report - evaluated with random weights. Then, for every
model and with the same code: accuracy and per-class recall (and the threshold report for two classes)
from :func:`litevision.engine.evaluate` (detectors: COCO mAP, AP50, AP75 and per-class AP from
:func:`litevision.engine.evaluate_task`; their latency includes the post-processing), params and MACs at the
input size, latency and throughput from :func:`litevision.bench.bench_model`, and exportability: an actual
ONNX export with the standard-operator check and the parity checks of :func:`litevision.export.export_model`
("yes" only when both pass).
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from litevision.bench import count_complexity
from litevision.bench.benchmark import bench_model, default_threads
from litevision.bench.timing import fixed_threads
from litevision.data import DataBundle, data_config_for, eval_dataset, load_bundle, split_dataset
from litevision.engine import ThresholdOptions, evaluate, evaluate_task, load_config
from litevision.engine import train as train_run
from litevision.errors import UserError
from litevision.export import ExportError, export_model
from litevision.models import (
    DataConfig,
    create_any_model,
    data_config_from_metadata,
    is_litevision_weights,
    load_trained_model,
    read_metadata,
    resolve_data_config,
    resolve_weights_path,
)
from litevision.registry import UnknownNameError
from litevision.utils.optional import require
from litevision.workflows.report import CompareReport, CompareRow

log = logging.getLogger(__name__)

BACKENDS = ("eager", "channels_last", "ort", "ort_int8")


@dataclass
class _Entry:
    spec: str
    model: nn.Module
    data_config: DataConfig
    weights: str
    train_seconds: float | None = None
    label: str = ""  # the row's name: the spec, or e.g. "mobilenetv2_100 (pruned to 50% MACs)"

    def __post_init__(self) -> None:
        self.label = self.label or self.spec


def compare_models(
    models: Sequence[str],
    output_dir: str | os.PathLike[str],
    *,
    data: str = "fashion_mnist_subset",
    data_options: Mapping[str, Any] | None = None,
    split: str = "test",
    input_size: int | None = None,
    train: bool = False,
    recipe: str = "quick",
    overrides: Sequence[str] = (),
    checkpoints: Mapping[str, str] | None = None,
    threshold: ThresholdOptions | None = None,
    backend: str = "eager",
    threads: int | None = None,
    bench_batch: int = 32,
    warmup: int = 5,
    iters: int = 30,
    export_check: bool = True,
    exporter: str = "dynamo",
    skip_missing: bool = False,
    ort_latency: bool = False,
) -> tuple[CompareReport, dict[str, Path]]:
    """Compare ``models`` and write the report into ``output_dir``; returns (report, written paths).

    ``input_size`` is the square input side shared by all models (default: the trained models' size,
    else the recipe's ``data.input_size``, else the first model card's). ``skip_missing`` skips names that
    are not registered (with a note) instead of failing before any work starts. ``ort_latency`` also times
    every model's ONNX export in onnxruntime (batch 1), next to the ``backend`` latency.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if not models:
        raise UserError("give at least one model")
    require("matplotlib", "report")  # the report's plots: fail now, not after training
    if export_check:
        require("onnxruntime", "export")
    out = Path(output_dir)
    checkpoints = dict(checkpoints or {})
    threads = threads or default_threads()
    skipped: list[str] = []
    specs = _check_specs(models, checkpoints, skipped, skip_missing)
    if not specs:
        raise UserError("no model left to compare: " + "; ".join(skipped))
    bundle = load_bundle(data, dict(data_options or {}))
    recipe_size = _recipe_size(recipe, overrides, train)  # also checks the recipe before any work
    size = input_size or _trained_size(specs, checkpoints) or recipe_size
    rows: list[CompareRow] = []
    notes: list[str] = []
    with fixed_threads(threads):  # training, evaluation, timing and export checks alike
        for spec in specs:
            log.info(f"{spec}")
            try:
                entry = _prepare(spec, bundle, data, data_options, size, train, recipe, overrides, checkpoints, out)
            except Exception as e:  # one model failing to train must not lose the others' results
                rows.append(CompareRow(model=spec, weights="-", status="failed", error=_reason(e)))
                log.info(f"{spec}: failed: {_reason(e)}")
                continue
            if size is None:
                size = entry.data_config.input_size[-1]
            if entry.data_config.input_size[-1] != size:
                entry.data_config = entry.data_config.replace(input_size=(entry.data_config.in_chans, size, size))
                notes.append(f"{entry.spec}: evaluated at {size}x{size}, not its trained size")
            if entry.weights == "random":
                notes.append(f"{entry.spec}: random weights (no checkpoint, no --train): its accuracy is chance level")
            rows.append(_measure(entry, bundle, data, split, threshold, backend, threads, bench_batch, warmup, iters,
                                 export_check, exporter, out, ort_latency and backend != "ort"))
    setup = {
        "dataset": data, "split": split, "num_samples": len(split_dataset(bundle, split)),
        "num_classes": bundle.num_classes, "task": bundle.task,
        "input_size": [bundle.in_chans, size, size], "backend": backend, "threads": threads,
        "bench_batch": bench_batch, "recipe": recipe if train else None, "overrides": list(overrides) if train else [],
        "torch": torch.__version__, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    report = CompareReport(rows, setup, skipped, notes)
    paths = report.write(out)
    return report, paths


def _check_specs(models: Sequence[str], checkpoints: dict[str, str], skipped: list[str],
                 skip_missing: bool) -> list[str]:
    """Fail (or skip) unknown names before any training starts."""
    specs = []
    for spec in models:
        if is_litevision_weights(spec):
            specs.append(spec)
            continue
        try:
            resolve_data_config(spec)
        except UnknownNameError as e:
            if not skip_missing:
                raise
            skipped.append(f"{spec} ({e})")
            log.info(f"skipping {spec}: not registered")
            continue
        specs.append(spec)
    unknown = set(checkpoints) - set(specs)
    if unknown:
        raise UserError(f"checkpoints given for models not compared: {', '.join(sorted(unknown))}")
    for spec, path in checkpoints.items():
        if not Path(path).exists():
            raise UserError(f"--checkpoint {spec}={path}: no such file or folder")
        if is_litevision_weights(path):  # such a file names its architecture: it must be the one compared
            held = read_metadata(resolve_weights_path(path))["model"]
            if held != spec:
                raise UserError(f"--checkpoint {spec}={path}: it holds a {held} model, not {spec}")
    return specs


def _trained_size(specs: Sequence[str], checkpoints: Mapping[str, str]) -> int | None:
    sizes = set()
    for spec in specs:
        path = spec if is_litevision_weights(spec) else checkpoints.get(spec)
        if path and is_litevision_weights(path):
            sizes.add(int(read_metadata(resolve_weights_path(path))["input_size"][-1]))
    if len(sizes) > 1:
        raise UserError(f"the checkpoints were trained at different input sizes {sorted(sizes)}: pass --input-size")
    return sizes.pop() if sizes else None


def _recipe_size(recipe: str, overrides: Sequence[str], train: bool) -> int | None:
    if not train:
        return None
    return load_config(recipe, list(overrides)).data.input_size


def _prepare(spec: str, bundle: DataBundle, data: str, data_options: Mapping[str, Any] | None, size: int | None,
             train: bool, recipe: str, overrides: Sequence[str], checkpoints: Mapping[str, str], out: Path) -> _Entry:
    if is_litevision_weights(spec) or is_litevision_weights(checkpoints.get(spec, "")):
        path = checkpoints.get(spec, spec)
        model, meta = load_trained_model(path)
        if meta.get("num_classes") != bundle.num_classes:
            raise UserError(f"{path} predicts {meta.get('num_classes')} classes, {data} has {bundle.num_classes}")
        return _Entry(str(meta["model"]), model, data_config_from_metadata(meta), f"checkpoint {path}",
                      label=_compressed_label(str(meta["model"]), meta))
    if spec in checkpoints:
        model = create_any_model(spec, num_classes=bundle.num_classes, in_chans=bundle.in_chans,
                                 checkpoint_path=checkpoints[spec])
        data_config = data_config_for(spec, bundle, input_size=size, pretrained=True)
        return _Entry(spec, model.eval(), data_config, f"checkpoint {checkpoints[spec]}")
    if train:
        run_name = spec.replace(":", "-").replace("/", "-")
        sets = [*overrides, f"model.name={spec}", f"data.name={data}", f"run.output={out / 'runs'}",
                f"run.name={run_name}", "run.progress=false", "run.tensorboard=false"]
        if size is not None:
            sets.append(f"data.input_size={size}")
        cfg = load_config(recipe, sets)
        previous = out / "runs" / run_name
        if (previous / "config.yaml").is_file():  # a run of an earlier compare into this report folder
            shutil.rmtree(previous)
        if data_options:
            cfg.data.options = dict(data_options)
        start = time.perf_counter()
        result = train_run(cfg)
        seconds = time.perf_counter() - start
        weights = result.best_checkpoint or result.last_checkpoint
        model, meta = load_trained_model(weights)
        log.info(f"{spec}: trained in {seconds:.0f} s -> {result.run_dir}")
        return _Entry(spec, model, data_config_from_metadata(meta), f"trained ({recipe})", seconds)
    model = create_any_model(spec, num_classes=bundle.num_classes, in_chans=bundle.in_chans)
    return _Entry(spec, model.eval(), data_config_for(spec, bundle, input_size=size), "random")


def _compressed_label(name: str, meta: Mapping[str, Any]) -> str:
    """``name`` with what compression did to it (a pruned network carries its structure in the metadata)."""
    pruned = meta.get("structure") or (meta.get("model_kwargs") or {}).get("structure")
    if not pruned:
        return name
    fraction = (meta.get("pruning") or pruned.get("pruning") or {}).get("macs_fraction")
    return f"{name} (pruned to {fraction:.0%} MACs)" if fraction else f"{name} (pruned)"


def _measure(entry: _Entry, bundle: DataBundle, data: str, split: str, threshold: ThresholdOptions | None,
             backend: str, threads: int, bench_batch: int, warmup: int, iters: int, export_check: bool,
             exporter: str, out: Path, ort_latency: bool = False) -> CompareRow:
    spec, model, cfg = entry.spec, entry.model.eval(), entry.data_config
    name = _safe(entry.label)
    row = CompareRow(model=entry.label, weights=entry.weights, architecture=entry.spec, backend=backend,
                     train_seconds=entry.train_seconds)
    try:
        if bundle.task == "detection":
            det, _ = evaluate_task(model, bundle, cfg, split, class_names=bundle.class_names, batch_size=16,
                                   meta={"model": spec, "dataset": data})
            det.save(out / "models" / name, plots=False)
            metrics = det.metrics()
            row.map, row.map50, row.map75 = metrics["map"], metrics["map50"], metrics["map75"]
            row.recall = {c.name: c.ap for c in det.per_class}
        else:
            report = evaluate(model, eval_dataset(bundle, cfg, split), class_names=bundle.class_names,
                              threshold=threshold, batch_size=128,
                              meta={"model": spec, "dataset": data, "split": split,
                                    "input_size": list(cfg.input_size)})
            report.save(out / "models" / name, plots=False)
            row.top1, row.top5 = report.top1, report.top5
            row.balanced_accuracy, row.macro_f1 = report.balanced_accuracy, report.macro_f1
            row.recall = {c.name: (None if c.recall != c.recall else c.recall) for c in report.per_class}
            row.threshold_line = report.threshold.line() if report.threshold else None
        complexity = count_complexity(model, cfg.input_size)
        row.params, row.macs = complexity.params, complexity.macs
    except Exception as e:
        row.status, row.error = "failed", f"evaluation: {_reason(e)}"
        log.info(f"{spec}: {row.error}")
        return row
    results = bench_model(spec, model=model, data_config=cfg, backends=(backend, "ort") if ort_latency else (backend,),
                          batch_size=bench_batch, threads=threads, warmup=warmup, iters=iters,
                          batch_iters=max(3, iters // 5), exporter=exporter, calibration=data)
    result = results[0]
    if ort_latency and results[1].status == "ok" and results[1].latency is not None:
        row.ort_latency_ms = results[1].latency.median_ms
    if result.status == "ok" and result.latency is not None:
        row.latency_ms, row.latency_p90_ms, row.throughput = (result.latency.median_ms, result.latency.p90_ms,
                                                             result.throughput)
    else:
        row.export_note = f"benchmark n/a: {result.reason}"
    if export_check:
        row.exportable, note = _exportable(spec, model, cfg, data, exporter, out / "exports" / name)
        row.export_note = "; ".join(n for n in (row.export_note, note) if n)
    quality = f"mAP {row.map:.2f}%" if row.map is not None else f"top-1 {row.top1 or float('nan'):.2f}%"
    log.info(f"{spec}: {quality}  params {row.params / 1e6:.2f}M  MACs {row.macs / 1e6:.1f}M  "
        f"latency {row.latency_ms or float('nan'):.2f} ms  exportable {row.exportable}")
    return row


def _exportable(spec: str, model: nn.Module, cfg: Any, data: str, exporter: str, out_dir: Path) -> tuple[str, str]:
    """("yes" | "no", reason): export to ONNX and run the standard-domain and parity checks (a detector: its
    decoded outputs, and with in-graph NMS)."""
    detector = getattr(model, "task", "") == "detection"
    try:
        export_model(spec, "onnx", out_dir, model=model, data_config=cfg,
                     images=None if detector else data, exporter=exporter, nms=detector)
    except ExportError as e:
        return "no", str(e).splitlines()[0][:200]
    except Exception as e:  # the exporter itself crashed: not deployable as is
        return "no", _reason(e)
    return "yes", ""


def _safe(spec: str) -> str:
    """A folder name for a row: ``timm:a/b`` -> ``timm_a_b``, ``m (pruned to 50% MACs)`` ->
    ``m_pruned_to_50pct_MACs``."""
    for old, new in ((":", "_"), ("/", "_"), (" (", "_"), (")", ""), (" ", "_"), ("%", "pct")):
        spec = spec.replace(old, new)
    return spec


def _reason(e: BaseException) -> str:
    """A failure for the report: a user error's whole message; otherwise the exception type and first line."""
    text = str(e).strip()
    if isinstance(e, UserError):
        return " ".join(text.split())
    return f"{type(e).__name__}: {(text.splitlines() or [''])[0]}"[:500]
