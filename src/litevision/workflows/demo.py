"""What ``make demo`` runs: five models trained briefly on the bundled Fashion-MNIST subset, then compared on
identical terms (accuracy, per-class recall, params, MACs, latency, throughput, exportability)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from litevision.workflows.compare import compare_models
from litevision.workflows.report import CompareReport

log = logging.getLogger(__name__)

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
        exporter=exporter, skip_missing=True,
    )
    report.notes.append(f"demo: {len(report.rows)} models trained, evaluated, benchmarked and export-checked in "
                        f"{time.perf_counter() - start:.0f} s; training is deliberately short (40 updates), so "
                        "accuracies are far from converged")
    paths = report.write(output_dir)
    return report, paths
