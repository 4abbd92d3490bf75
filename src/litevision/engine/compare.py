"""``compare_models``: several models on one test set, one input size and one metric code, into one report.

Each entry is a model spec (litevision name, ``timm:<name>``, ``tv:<name>``) or a litevision run folder /
weights file. A spec is trained on the spot with one recipe (``train=True``), loaded from
``checkpoints[spec]``, or - with a note in the report - evaluated with random weights. Then, for every
model and with the same code: accuracy and per-class recall (and the threshold report for two classes)
from :func:`litevision.engine.evaluate`, params and MACs at the input size, latency and throughput from
:func:`litevision.bench.bench_model`, and exportability: an actual ONNX export with the standard-operator
check and the parity checks of :func:`litevision.export.export_model` ("yes" only when both pass).
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from litevision.bench.complexity import count_complexity
from litevision.bench.report import CompareReport, CompareRow
from litevision.bench.timing import fixed_threads
from litevision.data.registry import DataBundle
from litevision.engine.evaluate import ThresholdOptions, evaluate
from litevision.engine.pipeline import (
    Preprocess,
    build_eval_dataset,
    build_model,
    load_bundle,
    load_trained_model,
    preprocess_from_metadata,
    resolve_preprocess,
)
from litevision.errors import UserError
from litevision.registry import UnknownNameError

BACKENDS = ("eager", "channels_last", "ort", "ort_int8")


@dataclass
class _Entry:
    spec: str
    model: nn.Module
    pre: Preprocess
    weights: str
    train_seconds: float | None = None


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
    log: Callable[[str], None] = print,
) -> tuple[CompareReport, dict[str, Path]]:
    """Compare ``models`` and write the report into ``output_dir``; returns (report, written paths).

    ``input_size`` is the square input side shared by all models (default: the trained models' size,
    else the recipe's ``data.input_size``, else the first model card's). ``skip_missing`` skips names that
    are not registered (with a note) instead of failing before any work starts.
    """
    from litevision.bench.benchmark import bench_model, default_threads

    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if not models:
        raise UserError("give at least one model")
    out = Path(output_dir)
    checkpoints = dict(checkpoints or {})
    threads = threads or default_threads()
    skipped: list[str] = []
    specs = _check_specs(models, checkpoints, skipped, skip_missing, log)
    if not specs:
        raise UserError("no model left to compare: " + "; ".join(skipped))
    bundle = load_bundle(data, dict(data_options or {}))
    recipe_size = _recipe_size(recipe, overrides, train)  # also checks the recipe before any work
    size = input_size or _trained_size(specs, checkpoints) or recipe_size
    rows: list[CompareRow] = []
    notes: list[str] = []
    with fixed_threads(threads):  # training, evaluation, timing and export checks alike
        for spec in specs:
            log(f"[compare] {spec}")
            try:
                entry = _prepare(spec, bundle, data, data_options, size, train, recipe, overrides, checkpoints, out,
                                 log)
            except Exception as e:  # one model failing to train must not lose the others' results
                rows.append(CompareRow(model=spec, weights="-", status="failed", error=_reason(e)))
                log(f"[compare] {spec}: failed: {_reason(e)}")
                continue
            if size is None:
                size = entry.pre.input_size[-1]
            if entry.pre.input_size[-1] != size:
                entry.pre.input_size = (entry.pre.input_size[0], size, size)
                notes.append(f"{entry.spec}: evaluated at {size}x{size}, not its trained size")
            if entry.weights == "random":
                notes.append(f"{entry.spec}: random weights (no checkpoint, no --train): its accuracy is chance level")
            rows.append(_measure(entry, bundle, data, split, threshold, backend, threads, bench_batch, warmup, iters,
                                 export_check, exporter, out, bench_model, log))
    setup = {
        "dataset": data, "split": split, "num_samples": len(_split(bundle, split)), "num_classes": bundle.num_classes,
        "input_size": [bundle.in_chans, size, size], "backend": backend, "threads": threads,
        "bench_batch": bench_batch, "recipe": recipe if train else None, "overrides": list(overrides) if train else [],
        "torch": torch.__version__, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    report = CompareReport(rows, setup, skipped, notes)
    paths = report.write(out)
    return report, paths


def _check_specs(models: Sequence[str], checkpoints: dict[str, str], skipped: list[str], skip_missing: bool,
                 log: Callable[[str], None]) -> list[str]:
    """Fail (or skip) unknown names before any training starts."""
    from litevision.export.api import is_litevision_weights
    from litevision.models._peers import resolve_data_config

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
            log(f"[compare] skipping {spec}: not registered")
            continue
        specs.append(spec)
    unknown = set(checkpoints) - set(specs)
    if unknown:
        raise UserError(f"checkpoints given for models not compared: {', '.join(sorted(unknown))}")
    return specs


def _trained_size(specs: Sequence[str], checkpoints: Mapping[str, str]) -> int | None:
    from litevision.engine.pipeline import resolve_weights_path
    from litevision.export.api import is_litevision_weights

    sizes = set()
    for spec in specs:
        path = spec if is_litevision_weights(spec) else checkpoints.get(spec)
        if path and is_litevision_weights(path):
            from litevision.engine.checkpoint import load_weights

            _, meta = load_weights(resolve_weights_path(path))
            sizes.add(int(meta["input_size"][-1]))
    if len(sizes) > 1:
        raise UserError(f"the checkpoints were trained at different input sizes {sorted(sizes)}: pass --input-size")
    return sizes.pop() if sizes else None


def _recipe_size(recipe: str, overrides: Sequence[str], train: bool) -> int | None:
    if not train:
        return None
    from litevision.engine.config import load_config

    return load_config(recipe, list(overrides)).data.input_size


def _prepare(spec: str, bundle: DataBundle, data: str, data_options: Mapping[str, Any] | None, size: int | None,
             train: bool, recipe: str, overrides: Sequence[str], checkpoints: Mapping[str, str], out: Path,
             log: Callable[[str], None]) -> _Entry:
    from litevision.export.api import is_litevision_weights

    if is_litevision_weights(spec) or is_litevision_weights(checkpoints.get(spec, "")):
        path = checkpoints.get(spec, spec)
        model, meta = load_trained_model(path)
        if meta.get("num_classes") != bundle.num_classes:
            raise UserError(f"{path} predicts {meta.get('num_classes')} classes, {data} has {bundle.num_classes}")
        return _Entry(str(meta["model"]), model, preprocess_from_metadata(meta), f"checkpoint {path}")
    if spec in checkpoints:
        model = build_model(spec, num_classes=bundle.num_classes, in_chans=bundle.in_chans,
                            checkpoint=checkpoints[spec])
        pre = resolve_preprocess(spec, bundle, input_size=size, pretrained=True)
        return _Entry(spec, model.eval(), pre, f"checkpoint {checkpoints[spec]}")
    if train:
        from litevision.engine.config import load_config
        from litevision.engine.trainer import train as train_run

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
        log(f"[compare] {spec}: trained in {seconds:.0f} s -> {result.run_dir}")
        return _Entry(spec, model, preprocess_from_metadata(meta), f"trained ({recipe})", seconds)
    model = build_model(spec, num_classes=bundle.num_classes, in_chans=bundle.in_chans)
    pre = resolve_preprocess(spec, bundle, input_size=size)
    return _Entry(spec, model.eval(), pre, "random")


def _split(bundle: DataBundle, split: str) -> Any:
    from litevision.engine.pipeline import split_dataset

    return split_dataset(bundle, split)


def _measure(entry: _Entry, bundle: DataBundle, data: str, split: str, threshold: ThresholdOptions | None,
             backend: str, threads: int, bench_batch: int, warmup: int, iters: int, export_check: bool,
             exporter: str, out: Path, bench_model: Callable[..., Any], log: Callable[[str], None]) -> CompareRow:
    spec, model, pre = entry.spec, entry.model.eval(), entry.pre
    row = CompareRow(model=spec, weights=entry.weights, backend=backend, train_seconds=entry.train_seconds)
    try:
        report = evaluate(model, build_eval_dataset(bundle, pre, split), class_names=bundle.class_names,
                          threshold=threshold, batch_size=128,
                          meta={"model": spec, "dataset": data, "split": split, "input_size": list(pre.input_size)})
        report.save(out / "models" / _safe(spec), plots=False)
        row.top1, row.top5 = report.top1, report.top5
        row.balanced_accuracy, row.macro_f1 = report.balanced_accuracy, report.macro_f1
        row.recall = {c.name: (None if c.recall != c.recall else c.recall) for c in report.per_class}
        row.threshold_line = report.threshold.line() if report.threshold else None
        complexity = count_complexity(model, pre.input_size)
        row.params, row.macs = complexity.params, complexity.macs
    except Exception as e:
        row.status, row.error = "failed", f"evaluation: {_reason(e)}"
        log(f"[compare] {spec}: {row.error}")
        return row
    cfg = pre.data_config()
    result = bench_model(spec, model=model, data_config=cfg, backends=(backend,), batch_size=bench_batch,
                         threads=threads, warmup=warmup, iters=iters, batch_iters=max(3, iters // 5),
                         exporter=exporter, calibration=data)[0]
    if result.status == "ok" and result.latency is not None:
        row.latency_ms, row.latency_p90_ms, row.throughput = (result.latency.median_ms, result.latency.p90_ms,
                                                             result.throughput)
    else:
        row.export_note = f"benchmark n/a: {result.reason}"
    if export_check:
        row.exportable, note = _exportable(spec, model, cfg, data, exporter, out)
        row.export_note = "; ".join(n for n in (row.export_note, note) if n)
    log(f"[compare] {spec}: top-1 {row.top1:.2f}%  params {row.params / 1e6:.2f}M  MACs {row.macs / 1e6:.1f}M  "
        f"latency {row.latency_ms or float('nan'):.2f} ms  exportable {row.exportable}")
    return row


def _exportable(spec: str, model: nn.Module, cfg: Any, data: str, exporter: str, out: Path) -> tuple[str, str]:
    """("yes" | "no", reason): export to ONNX and run the standard-domain and parity checks."""
    from litevision.export.api import export_model
    from litevision.export.errors import ExportError

    try:
        export_model(spec, "onnx", out / "exports" / _safe(spec), model=model, data_config=cfg, images=data,
                     exporter=exporter)
    except ExportError as e:
        return "no", str(e).splitlines()[0][:200]
    except Exception as e:  # the exporter itself crashed: not deployable as is
        return "no", _reason(e)
    return "yes", ""


def _safe(spec: str) -> str:
    return spec.replace(":", "_").replace("/", "_")


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


DEMO_MODELS = ("lcnet_t", "lsnet_t", "mobilenetv3_small_100", "shufflenetv2_100", "timm:mobilenetv3_small_050")
DEMO_OVERRIDES = (
    "data.input_size=64",  # LSNet needs >= 64 px; the 28 px images are upsampled
    "data.val_split=none",  # compare evaluates on the test split itself: no second evaluation per run
    "sched.epochs=1",
    "sched.warmup_epochs=0.1",
    "run.max_steps=40",  # 40 updates x 64 images: half an epoch of the 5,000-image subset
    "run.bn_recalibration=20",  # BatchNorm statistics of the final weights (40 updates leave them stale)
)


def run_demo(
    output_dir: str | os.PathLike[str] = "reports/demo",
    *,
    models: Sequence[str] = DEMO_MODELS,
    overrides: Sequence[str] = (),
    data: str = "fashion_mnist_subset",
    data_options: Mapping[str, Any] | None = None,
    threads: int | None = None,
    exporter: str = "legacy",
    log: Callable[[str], None] = print,
) -> tuple[CompareReport, dict[str, Path]]:
    """What ``make demo`` runs: train each of ``models`` briefly with the ``quick`` recipe at 64 px on the
    bundled Fashion-MNIST subset, then :func:`compare_models` them into ``output_dir``. Models that are
    not registered are skipped with a note. ``data`` / ``data_options`` swap the dataset (tests use a tiny
    synthetic one). The exportability check uses the TorchScript-based ONNX exporter by default: the same
    standard-op and parity checks as with dynamo, 7-14x faster to run (see docs/deploy.md)."""
    start = time.perf_counter()
    report, paths = compare_models(
        models, output_dir, data=data, data_options=data_options, train=True, recipe="quick",
        overrides=[*DEMO_OVERRIDES, *overrides], threads=threads, bench_batch=32, warmup=3, iters=20,
        exporter=exporter, skip_missing=True, log=log,
    )
    report.notes.append(f"demo: {len(report.rows)} models trained, evaluated, benchmarked and export-checked in "
                        f"{time.perf_counter() - start:.0f} s; training is deliberately short (40 updates), so "
                        "accuracies are far from converged")
    paths = report.write(output_dir)
    return report, paths
