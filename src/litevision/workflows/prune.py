"""Pruning as a command: a registered model or a trained run -> a pruned weights file (-> a fine-tuned run).

``prune_model("mobilenetv3_small_100", "out", target_macs=0.5, data="fashion_mnist_subset", fine_tune="quick")``
builds the model for the dataset (random init, or ``checkpoint``; a run folder / weights file of
``litevision train`` is loaded with its classes and preprocessing), prunes it with
:func:`litevision.compress.prune` (Taylor importance on a few training batches), writes ``pruned.safetensors``
(weights + metadata with ``"structure"`` and ``"pruning"``) and ``prune.json``, measures top-1 before and after
on the test split, and with ``fine_tune`` trains the pruned network with that recipe in ``out/finetune``: the
trainer starts from the pruned weights (``model.checkpoint``) and carries the structure in ``model.kwargs``, so the
run's own weights files rebuild the pruned network too.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from litevision.compress import PruneResult, check_prune_request, prune, save_pruned
from litevision.data import DataBundle, data_config_for, eval_dataset, load_bundle
from litevision.engine import TrainConfig, evaluate, load_config, train
from litevision.engine.batchnorm import recalibrate_batchnorm
from litevision.errors import UserError
from litevision.models import (
    DataConfig,
    create_any_model,
    data_config_from_metadata,
    get_model_card,
    is_litevision_weights,
    load_trained_model,
    load_weights,
    parse_model_spec,
    read_metadata,
    resolve_weights_path,
)
from litevision.utils.io import atomic_write_text

log = logging.getLogger(__name__)

PRUNE_FILES = ("pruned.safetensors", "prune.json", "finetune")  # what an output folder receives
FINETUNE_DIR = "finetune"


@dataclass
class PruneReport:
    """What ``litevision prune`` did: the pruning result, the files, top-1 (%) before / after."""

    model: str
    source: str
    result: PruneResult = field(repr=False)
    files: list[Path]
    accuracy: dict[str, float] = field(default_factory=dict)  # original / pruned / fine_tuned, when measured
    fine_tune_run: Path | None = None
    bn_recalibration_batches: int = 0  # training batches that re-estimated BatchNorm statistics after pruning

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "source": self.source, **self.result.summary(),
                "bn_recalibration_batches": self.bn_recalibration_batches, "accuracy": self.accuracy,
                "files": [str(f) for f in self.files],
                "fine_tune_run": str(self.fine_tune_run) if self.fine_tune_run else None}

    def summary(self) -> str:
        r = self.result
        lines = [f"{self.model}: MACs {r.macs_before / 1e6:.2f}M -> {r.macs_after / 1e6:.2f}M "
                 f"({r.macs_fraction:.1%}), params {r.params_before / 1e6:.3f}M -> {r.params_after / 1e6:.3f}M "
                 f"({r.params_fraction:.1%}) at {'x'.join(map(str, r.input_size))}, channel ratio {r.ratio:.3f}, "
                 f"importance {r.importance}"]
        if self.accuracy:
            lines.append("top-1: " + ", ".join(f"{k.replace('_', ' ')} {v:.2f}%" for k, v in self.accuracy.items()))
        return "\n".join(lines)


def check_prune_args(target_macs: float | None, ratio: float | None, importance: str, iterative_steps: int = 1,
                     round_to: int | None = None, calibration_batches: int = 4, recalibrate_bn: int = 0) -> None:
    """The numbers of a prune request, checked before any work (a :class:`UserError` names the bad one)."""
    check_prune_request(target_macs, ratio, importance,
                        names={"target_macs": "--target-macs", "ratio": "--ratio", "importance": "--importance"})
    if iterative_steps < 1 or calibration_batches < 1 or (round_to is not None and round_to < 1):
        raise UserError("--steps, --round-to and --calibration-batches must be >= 1")
    if recalibrate_bn < 0:
        raise UserError(f"--recalibrate-bn {recalibrate_bn}: the number of training batches must be >= 0")


def source_model_name(model: str) -> str:
    """The registered name behind ``model`` (a name, a run folder or a weights file); unknown names raise a
    :class:`UserError` with close names."""
    if is_litevision_weights(model):
        return str(read_metadata(resolve_weights_path(model))["model"])
    if parse_model_spec(model).source != "litevision":
        raise UserError(f"{model}: prune takes a litevision model name, or a run folder / weights file of "
                        "`litevision train` (timm / torchvision peers are not supported)")
    get_model_card(model)
    return model


def prune_model(
    model: str,
    output: str | os.PathLike[str],
    *,
    target_macs: float | None = None,
    ratio: float | None = None,
    importance: str = "l2",
    input_size: Sequence[int] | None = None,
    checkpoint: str | None = None,
    num_classes: int | None = None,
    data: str | None = None,
    data_options: dict[str, Any] | None = None,
    fine_tune: str | None = None,
    overrides: Sequence[str] = (),
    iterative_steps: int = 1,
    round_to: int | None = None,
    calibration_batches: int = 4,
    batch_size: int = 32,
    recalibrate_bn: int = 0,
) -> PruneReport:
    """Prune ``model`` (a registered name, or a run folder / weights file) into ``output`` (see the module doc).

    ``input_size``: S, (H, W) or (C, H, W) for the MAC count (default: the data's / card's). ``data``: the
    dataset for the top-1 report, Taylor's calibration batches and (a model given by name) the class count and
    input channels; a trained run brings its own. ``fine_tune``: a recipe name or file, with ``overrides``
    (``section.key=value``) on top. ``recalibrate_bn``: re-estimate the pruned network's BatchNorm statistics on
    that many training batches before saving (needs a dataset; pruning shifts every layer's activations).
    """
    check_prune_args(target_macs, ratio, importance, iterative_steps, round_to, calibration_batches, recalibrate_bn)
    name = source_model_name(model)
    if checkpoint is not None and is_litevision_weights(model):
        raise UserError("--checkpoint is for a model given by name; a run folder / weights file brings its weights")
    cfg = _fine_tune_config(fine_tune, overrides, data, data_options) if fine_tune else None
    if cfg is not None and data is None and not is_litevision_weights(model):
        data, data_options = cfg.data.name, {**cfg.data.options, **({"root": cfg.data.root} if cfg.data.root else {})}
    if cfg is not None and input_size is None and cfg.data.input_size:
        input_size = (cfg.data.input_size,)  # prune where the recipe trains
    if importance == "taylor" and data is None and not (
            is_litevision_weights(model) and read_metadata(resolve_weights_path(model)).get("dataset")):
        raise UserError("--importance taylor needs training batches: pass --data DATASET")
    out = Path(output)

    net, kwargs, class_names, data_config, bundle = _load_source(model, name, checkpoint, num_classes, data,
                                                                 data_options, input_size)
    if recalibrate_bn and (bundle is None or bundle.task != "classification"):
        raise UserError("--recalibrate-bn needs training images: pass --data DATASET (or prune a trained run)")
    tune_bundle = _fine_tune_data(cfg, net) if cfg is not None else None
    calibration = _calibration(bundle, data_config, calibration_batches, batch_size) if importance == "taylor" else None
    size = _count_size(name, data_config, input_size)
    log.info("pruning %s (%s importance) at input %s", name, importance, "x".join(map(str, size)))
    result = prune(net, target_macs=target_macs, ratio=ratio, importance=importance, input_size=size,
                   iterative_steps=iterative_steps, round_to=round_to, calibration=calibration)
    if recalibrate_bn:  # removed channels shift what every BatchNorm sees: re-estimate its statistics
        used = recalibrate_batchnorm(result.model, _calibration(bundle, data_config, recalibrate_bn, batch_size))
        log.info("BatchNorm statistics of the pruned network re-estimated on %d training batches", used)
    out.mkdir(parents=True, exist_ok=True)
    weights = save_pruned(out / "pruned.safetensors", result, model_name=name, model_kwargs=kwargs,
                          class_names=class_names, data_config=data_config)
    report = PruneReport(model=name, source=str(model), result=result, files=[weights],
                         bn_recalibration_batches=recalibrate_bn)
    if bundle is not None and bundle.task == "classification":
        test = eval_dataset(bundle, data_config)
        report.accuracy["original"] = evaluate(net, test, class_names=class_names, batch_size=batch_size).top1
        report.accuracy["pruned"] = evaluate(result.model, test, class_names=class_names,
                                             batch_size=batch_size).top1
    if cfg is not None and tune_bundle is not None:
        _fine_tune(cfg, tune_bundle, report, weights, name, kwargs, out / FINETUNE_DIR, batch_size)
    summary = out / "prune.json"
    report.files.append(summary)
    atomic_write_text(summary, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _fine_tune_config(recipe: str, overrides: Sequence[str], data: str | None,
                      data_options: dict[str, Any] | None) -> TrainConfig:
    """The recipe with the overrides, loaded (and so checked) before any work."""
    extra = [] if data is None else [f"data.name={data}"]
    extra += [f"data.options.{k}={json.dumps(v)}" for k, v in (data_options or {}).items()]
    return load_config(recipe, [*extra, *overrides])


def _load_source(model: str, name: str, checkpoint: str | None, num_classes: int | None, data: str | None,
                 data_options: dict[str, Any] | None, input_size: Sequence[int] | None
                 ) -> tuple[nn.Module, dict[str, Any], list[str], DataConfig, DataBundle | None]:
    """(model, its constructor kwargs, class names, input config, dataset or None)."""
    size = _square(input_size)
    chans = int(input_size[0]) if input_size and len(input_size) == 3 else None
    if is_litevision_weights(model):
        net, meta = load_trained_model(model)
        kwargs = {k: v for k, v in (meta.get("model_kwargs") or {}).items() if k != "structure"}
        data_config = data_config_from_metadata(meta)
        _check_channels(chans, data_config, model)
        if size is not None:
            data_config = data_config.replace(input_size=(data_config.input_size[0], *size))
        name_of_data = data or meta.get("dataset")
        options = data_options if data is not None else meta.get("dataset_options")
        bundle = load_bundle(name_of_data, options) if name_of_data else None
        if bundle is not None and bundle.num_classes != int(meta["num_classes"]):
            raise UserError(f"{model} has {meta['num_classes']} classes, {name_of_data} has {bundle.num_classes}")
        return net, kwargs, list(meta.get("class_names") or []), data_config, bundle
    bundle = load_bundle(data, data_options) if data is not None else None
    if bundle is not None:
        if num_classes is not None and num_classes != bundle.num_classes:
            raise UserError(f"--num-classes {num_classes} contradicts {data}, which has {bundle.num_classes} classes")
        data_config = data_config_for(name, bundle, input_size=size[0] if size else None)
        classes, names, in_chans = bundle.num_classes, list(bundle.class_names), bundle.in_chans
        _check_channels(chans, data_config, data)
    else:
        card = get_model_card(name)
        data_config = card.data_config
        if size is not None:  # a model by name takes the channels of --input-size C H W
            data_config = data_config.replace(input_size=(chans or data_config.input_size[0], *size))
        classes = num_classes if num_classes is not None else int(card.extra.get("paper_num_classes", 1000))
        names, in_chans = [str(i) for i in range(classes)], data_config.input_size[0]
    net = create_any_model(name, num_classes=classes, in_chans=in_chans, checkpoint_path=checkpoint).eval()
    return net, {}, names, data_config, bundle


def _check_channels(chans: int | None, data_config: DataConfig, source: str) -> None:
    """--input-size C H W must agree with an image model's input channels (a cube's shape is its own)."""
    expected = data_config.input_size[0]
    if chans is not None and len(data_config.input_size) == 3 and chans != expected:
        raise UserError(f"--input-size gives {chans} input channels, but {source} has {expected}: give H W only, or "
                        f"C = {expected}")


def _square(input_size: Sequence[int] | None) -> tuple[int, int] | None:
    if not input_size:
        return None
    sizes = tuple(int(s) for s in input_size)
    if any(s < 1 for s in sizes):
        raise UserError(f"--input-size {' '.join(map(str, sizes))}: sizes must be positive")
    if len(sizes) == 1:
        return (sizes[0], sizes[0])
    if len(sizes) == 2:
        return sizes  # type: ignore[return-value]
    if len(sizes) == 3:
        return sizes[1], sizes[2]
    raise UserError(f"--input-size takes S, H W or C H W, got {len(sizes)} numbers")


def _count_size(name: str, data_config: DataConfig, input_size: Sequence[int] | None) -> tuple[int, ...]:
    """Where the MACs are counted: the input configuration's size (a hyperspectral cube keeps its own shape)."""
    size = tuple(data_config.input_size)
    if input_size and len(input_size) == 3 and len(size) == 3:
        size = tuple(int(s) for s in input_size)
    return size


def _calibration(bundle: DataBundle | None, data_config: DataConfig, batches: int, batch_size: int
                 ) -> list[tuple[Tensor, Tensor]]:
    """A few batches of the training split with the evaluation transform (a fixed random subset)."""
    assert bundle is not None
    dataset = eval_dataset(bundle, data_config, split="train")
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(dataset), generator=generator)[: batches * batch_size].tolist()
    out = []
    for start in range(0, len(order), batch_size):
        samples = [dataset[i] for i in order[start:start + batch_size]]
        inputs = torch.stack([torch.as_tensor(s[0]) for s in samples])
        targets = torch.as_tensor([int(s[1]) for s in samples])
        out.append((inputs, targets))
    return out


def _fine_tune_data(cfg: TrainConfig, net: nn.Module) -> DataBundle:
    """The fine-tuning dataset, which must have the model's classes and input channels (checked before pruning)."""
    bundle = load_bundle(cfg.data.name, cfg.data.options, root=cfg.data.root)
    classes = int(getattr(net, "num_classes", bundle.num_classes))
    in_chans = cfg.data.in_chans or bundle.in_chans
    if bundle.num_classes != classes or in_chans != getattr(net, "in_chans", in_chans):
        raise UserError(f"the fine-tuning data {cfg.data.name} has {bundle.num_classes} classes and {in_chans} input "
                        f"channels, the model {classes} and {getattr(net, 'in_chans', '?')}: prune with --data "
                        f"{cfg.data.name} so the model is built for it")
    return bundle


def _fine_tune(cfg: TrainConfig, bundle: DataBundle, report: PruneReport, weights: Path, name: str,
               kwargs: dict[str, Any], run_dir: Path, batch_size: int) -> None:
    """Train the pruned network with the recipe; report top-1 of the pruned weights and of the trained ones on the
    run's test split and preprocessing."""
    result = report.result
    cfg.model.name = name
    cfg.model.checkpoint = str(weights)
    cfg.model.checkpoint_num_classes = None
    # the structure rides in model.kwargs: the run's config and weights files then rebuild the pruned network (and
    # name what was pruned: apply_structure reads only its format, model and modules)
    cfg.model.kwargs = {**cfg.model.kwargs, **kwargs, "structure": {**result.structure, "pruning": result.summary()}}
    log.info("fine-tuning the pruned %s in %s", name, run_dir)
    run = train(cfg, run_dir=run_dir)
    report.fine_tune_run = run.run_dir
    _, meta = load_weights(run.last_checkpoint)
    test = eval_dataset(bundle, data_config_from_metadata(meta))
    report.accuracy["pruned"] = evaluate(result.model, test, class_names=meta.get("class_names"),
                                         batch_size=batch_size).top1
    top1 = run.metrics.get("test_top1")
    if top1 is not None:
        report.accuracy["fine_tuned"] = float(top1)
    report.files += [p for p in (run.best_checkpoint, run.last_checkpoint) if p is not None]
