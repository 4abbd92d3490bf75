"""Evaluation entry points: :func:`evaluate` (a classifier on a dataset), :func:`evaluate_task` (any model on a
split with its task's pipeline and metrics: what comparison runs) and :func:`evaluate_checkpoint` (trained
weights on their task's test set: what ``litevision eval`` runs)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset

from litevision.data import DataBundle, load_bundle
from litevision.data.loader import make_loader
from litevision.engine.distributed import resolve_device
from litevision.engine.inference import run_inference
from litevision.engine.metrics import EvalReport, ThresholdOptions
from litevision.engine.tasks import ClassificationEvaluator, Report, Task, task_class
from litevision.errors import UserError
from litevision.models import DataConfig, create_any_model, data_config_from_metadata, load_trained_model


def evaluate(
    model: nn.Module,
    data: DataLoader | Dataset,
    *,
    class_names: Sequence[str] | None = None,
    threshold: ThresholdOptions | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    skip_bad: bool = False,
    meta: dict[str, Any] | None = None,
    progress: bool = False,
) -> EvalReport:
    """Evaluate a classifier on ``data`` (a DataLoader, or a Dataset of ready ``(tensor, label)`` samples,
    e.g. from :func:`litevision.data.eval_dataset`) and return an :class:`EvalReport`."""
    loader = data if isinstance(data, DataLoader) else make_loader(data, batch_size=batch_size, workers=workers)
    evaluator = ClassificationEvaluator(class_names or [], threshold)
    skipped = run_inference(model, loader, evaluator.update, device=device, amp_dtype=amp_dtype,
                            channels_last=channels_last, skip_bad=skip_bad, progress=progress)
    if class_names is None and evaluator.logits:  # numbered classes, as many as the model has outputs
        evaluator.class_names = [str(i) for i in range(evaluator.logits[0].shape[1])]
    return evaluator.compute(meta=meta, skipped=skipped)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    *,
    data: str | None = None,
    data_options: dict[str, Any] | None = None,
    split: str = "test",
    model_name: str | None = None,
    input_size: int | None = None,
    threshold: ThresholdOptions | None = None,
    device: str = "auto",
    batch_size: int = 256,
    workers: int = 0,
    skip_bad: bool = False,
    progress: bool = False,
    out_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
) -> Report:
    """Evaluate a litevision weights file or run folder (model, classes, task and preprocessing read from it),
    or foreign weights with ``model_name``, on ``split`` of ``data`` (default: the dataset it was trained on,
    with the same options, so a hyperspectral run is scored on its own test pixels). With ``out_dir`` the
    report's files and the task's pictures (confusion matrix, threshold curves, class map) are written there.
    """
    ckpt = Path(checkpoint)
    if model_name is None:
        model, meta = load_trained_model(ckpt)
        run_data = _run_data_section(ckpt)
        skip_bad = skip_bad or bool(run_data.get("skip_bad"))  # a run trained with --skip-bad is evaluated so
        trained_on = run_data.get("name") or meta.get("dataset")
        data = data or trained_on
        if data is None:
            raise UserError(f"{ckpt}: which data? pass --data")
        if data_options is None and data == trained_on:
            data_options = dict(run_data.get("options") or meta.get("dataset_options") or {})
            root = run_data.get("root") or meta.get("dataset_root")
            if root:
                data_options.setdefault("root", root)
        bundle = load_bundle(data, data_options, skip_bad=skip_bad)
        if bundle.num_classes != int(meta["num_classes"]):
            raise UserError(f"{ckpt} predicts {meta['num_classes']} classes but {data} has {bundle.num_classes}")
        data_config = data_config_from_metadata(meta)
        task_name = meta.get("task", "auto")
        class_names = list(meta.get("class_names") or bundle.class_names)
    else:
        if data is None:
            raise UserError("pass --data with --model")
        bundle = load_bundle(data, data_options, skip_bad=skip_bad)
        task_name = "auto"
        data_config = task_class(task_name, bundle).resolve_data_config(bundle, model_name, pretrained=True)
        model = create_any_model(model_name, num_classes=bundle.num_classes, in_chans=data_config.in_chans,
                                 checkpoint_path=str(ckpt))
        class_names = bundle.class_names
        meta = {"model": model_name}
    if input_size is not None:
        data_config = data_config.replace(input_size=(data_config.in_chans, input_size, input_size))
    dev = resolve_device(device)
    model = model.to(dev)
    report, task = evaluate_task(model, bundle, data_config, split, task_name=task_name, class_names=class_names,
                                 threshold=threshold, device=dev, batch_size=batch_size, workers=workers,
                                 skip_bad=skip_bad, progress=progress,
                                 meta={"checkpoint": str(checkpoint), "model": meta.get("model"), "dataset": data})
    if out_dir is not None:
        report.save(out_dir, plots=plots)
        if plots:
            task.visualize(model, report, Path(out_dir), device=dev)
    return report


def evaluate_task(
    model: nn.Module,
    bundle: DataBundle,
    data_config: DataConfig,
    split: str = "test",
    *,
    task_name: str = "auto",
    class_names: Sequence[str] | None = None,
    threshold: ThresholdOptions | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    workers: int = 0,
    skip_bad: bool = False,
    progress: bool = False,
    meta: dict[str, Any] | None = None,
) -> tuple[Report, Task]:
    """Evaluate ``model`` on ``split`` of ``bundle`` with its task's data pipeline and metrics (the dataset's
    task for ``auto``: classification, hyperspectral, detection); returns the report and the task."""
    task = task_class(task_name, bundle)(bundle, data_config, class_names=class_names)
    evaluator = task.evaluator(threshold=threshold) if threshold is not None else task.evaluator()
    loader = make_loader(task.eval_dataset(split), batch_size=batch_size, workers=workers,
                         collate_samples=task.collate)
    skipped = run_inference(model, loader, evaluator.update, device=device, skip_bad=skip_bad, progress=progress)
    report = evaluator.compute(skipped=skipped, meta={**(meta or {}), "split": split, "task": task.name,
                                                      "input_size": list(data_config.input_size)})
    return report, task


def _run_data_section(path: Path) -> dict[str, Any]:
    """The ``data`` section of a run folder's config.yaml (empty for a weights file)."""
    config = path / "config.yaml"
    if not (path.is_dir() and config.is_file()):
        return {}
    return (yaml.safe_load(config.read_text()) or {}).get("data", {}) or {}
