"""The one training loop: ``train(config) -> RunResult`` for every task (:mod:`litevision.engine.tasks`).

Built from timm's parts rather than re-written: ``create_optimizer_v2``, its schedulers
(:mod:`litevision.engine.schedulers`), ``dispatch_clip_grad`` (adaptive gradient clipping included) and
``ModelEmaV3``. Adds what a team needs around them: AMP, channels-last, gradient accumulation, DDP under
torchrun, per-epoch validation with the task's evaluator, best/last weights, CSV/JSONL logs, distillation
from a frozen teacher, and checkpoints that resume exactly. What differs between tasks — the data and its
batches, the loss, the metrics and the report — comes from the task.

Exact resume: every input to an update is a function of the saved state. The sampler's order depends
on (seed, epoch) and skips what the interrupted epoch already consumed; per-sample augmentation is
seeded by (seed, epoch, index) (:mod:`litevision.data.loader`); the main process re-seeds its RNGs
(mixup, dropout, drop-path) from (seed, rank, epoch, micro-batch) before each micro-batch, and its RNG
states are also saved and restored; loaders never draw from the global RNG; checkpoints are only taken
at update boundaries. With ``run.deterministic`` on CPU a resumed run's
final weights are bitwise identical to an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from litevision.data import absolute_data_path, load_bundle
from litevision.data.loader import ResumableSampler, ShardSampler, iterate, make_loader, seed_all
from litevision.engine import distributed as D
from litevision.engine.batchnorm import recalibrate_batchnorm
from litevision.engine.checkpoint import CheckpointStore, capture_rng_state, load_state, restore_rng_state
from litevision.engine.config import TrainConfig, load_config, save_config, validate_config
from litevision.engine.inference import run_inference
from litevision.engine.logger import RunLogger
from litevision.engine.schedulers import create_scheduler
from litevision.engine.tasks import Report, Task, task_class
from litevision.errors import UserError
from litevision.models import create_any_model, load_trained_model, load_weights, save_weights, weights_metadata
from litevision.utils.cpu import keep_freed_memory, usable_cpus
from litevision.utils.io import atomic_write_text
from litevision.utils.optional import available

log = logging.getLogger(__name__)

STATE_VERSION = 1
_TRAIN_STREAM = 0x7E57  # separates the trainer's seeds from the per-sample augmentation seeds


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN or infinite; the run stopped before updating the weights."""


@dataclass
class RunResult:
    run_dir: Path
    best_checkpoint: Path | None  # best.safetensors (None when there was no validation)
    last_checkpoint: Path  # last.safetensors: the weights at the end (EMA weights when EMA is on)
    metrics: dict[str, Any]  # also in <run>/results.json
    config: TrainConfig = field(repr=False)


@dataclass
class EpochTotals:
    """Running sums of the epoch in progress (saved in checkpoints, so a resumed epoch reports all of it)."""

    loss_sum: float = 0.0
    batches: int = 0
    samples: int = 0

    def add(self, loss: float, samples: int) -> None:
        self.loss_sum += loss
        self.batches += 1
        self.samples += samples

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.batches, 1)

    def to_state(self) -> list[float]:
        return [self.loss_sum, self.batches, self.samples]

    @classmethod
    def from_state(cls, state: list[float]) -> EpochTotals:
        return cls(float(state[0]), int(state[1]), int(state[2]))


def _amp_dtype(name: str, device: torch.device) -> torch.dtype | None:
    if name == "none":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        if device.type != "cuda":
            raise UserError("run.amp=fp16 needs CUDA; on CPU use bf16 or none")
        return torch.float16
    if name == "auto":
        if device.type != "cuda":
            return None  # bf16 autocast is slower than fp32 on most CPUs without AMX / AVX512-BF16
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    raise UserError(f"run.amp must be auto, none, bf16 or fp16, not {name!r}")


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Any:
    """Deterministic algorithms for the duration of the run (restored afterwards: library callers)."""
    if not enabled:
        yield
        return
    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev[2], prev[3]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _hms(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Trainer:
    """One training run. Use :func:`train` / :func:`resume`; the class is here for readers and tests.

    The constructor builds, in order: the data and the task, the model, the optimizer and its schedule, the
    loss (with the teacher), the DDP / EMA wrappers, the validation loader, then the run's progress state
    (restored from the last checkpoint when resuming).
    """

    def __init__(self, cfg: TrainConfig, dist: D.DistInfo, run_dir: Path, resuming: bool) -> None:
        self.cfg, self.dist, self.run_dir = cfg, dist, run_dir
        self.main, self.device = dist.is_main, dist.device
        if cfg.run.threads > 0:
            torch.set_num_threads(cfg.run.threads)
        if cfg.run.keep_memory and self.device.type == "cpu":
            keep_freed_memory()
        _seed_everything(cfg.run.seed + dist.rank)
        self._build_data()
        self._build_model()
        self._build_optimizer()
        self._build_schedule()
        self._build_loss()
        self._build_wrappers()
        self._build_validation()
        self._init_progress(resuming)

    # --- build steps -------------------------------------------------------------------------------------

    def _build_data(self) -> None:
        """The dataset, the task that goes with it, the training set, sampler and loader."""
        cfg, d = self.cfg, self.cfg.data
        self.bundle = load_bundle(d.name, d.options, root=d.root, skip_bad=d.skip_bad)
        # folders are saved as absolute paths: evaluating the run from another directory finds the same data
        d.name, d.root = absolute_data_path(d.name), d.root and str(Path(d.root).resolve())
        task_cls = task_class(cfg.task.name, self.bundle)
        data_config = task_cls.resolve_data_config(
            self.bundle, cfg.model.name, input_size=d.input_size, in_chans=d.in_chans, crop_pct=d.crop_pct,
            interpolation=d.interpolation, norm=d.norm, mean=d.mean, std=d.std,
            pretrained=cfg.model.checkpoint is not None)
        self.task: Task = task_cls(self.bundle, data_config)
        self.data_config = data_config
        self.num_classes = self.bundle.num_classes
        self.train_set = self.task.train_dataset(cfg.aug, seed=cfg.run.seed)
        self.val_split = self._val_split()
        self.workers = min(d.workers, usable_cpus())
        if self.workers < d.workers and self.main:
            log.info("data.workers=%d capped at %d: the CPUs this process may use", d.workers, self.workers)
        self.sampler = ResumableSampler(self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                        shuffle=True, seed=cfg.run.seed)
        self.loader = self._loader(self.train_set, d.batch_size, sampler=self.sampler, drop_last=True,
                                   seed=cfg.run.seed)
        self.accum = max(1, cfg.optim.accum_steps)
        self.updates_per_epoch = self.sampler.num_samples // d.batch_size // self.accum
        if self.updates_per_epoch == 0:
            raise UserError(f"{len(self.train_set)} training samples over {self.dist.world_size} process(es) do "
                            f"not fill one update of batch {d.batch_size} x {self.accum} accumulation steps; "
                            "lower data.batch_size")
        self.global_batch = d.batch_size * self.accum * self.dist.world_size

    def _loader(self, dataset: Any, batch_size: int, **kwargs: Any) -> torch.utils.data.DataLoader:
        return make_loader(dataset, batch_size=batch_size, workers=self.workers,
                           pin_memory=self.device.type == "cuda", collate_samples=self.task.collate, **kwargs)

    def _build_model(self) -> None:
        """The model (with the constructor arguments the data implies), on the device, in its memory format."""
        cfg, run = self.cfg, self.cfg.run
        self.model_kwargs = self._model_kwargs()
        self.model = self._create_model(cfg.model.name, kwargs=self.model_kwargs, checkpoint=cfg.model.checkpoint,
                                        checkpoint_num_classes=cfg.model.checkpoint_num_classes)
        if cfg.model.backbone_checkpoint:
            if not callable(getattr(self.model, "load_backbone", None)):
                raise UserError(f"model.backbone_checkpoint: {cfg.model.name} has no separate backbone (detectors "
                                "have one); model.checkpoint starts a whole model from trained weights")
            self.model.load_backbone(cfg.model.backbone_checkpoint)
        self.model = self.model.to(self.device)
        self.channels_last = run.channels_last if run.channels_last is not None else self.device.type == "cuda"
        if self.channels_last and any(p.dim() == 5 for p in self.model.parameters()):  # 3-D convs (HybridSN)
            if run.channels_last:
                raise UserError(f"run.channels_last=true: {cfg.model.name} has 3-D convolutions; the channels-last "
                                "layout is for 2-D image models")
            self.channels_last = False
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = _amp_dtype(run.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.aux_loss_weight = cfg.model.aux_loss_weight
        if self.aux_loss_weight and not callable(getattr(self.model, "auxiliary_loss", None)):
            raise UserError(f"model.aux_loss_weight={self.aux_loss_weight}: {cfg.model.name} has no auxiliary loss "
                            "(models that have one define auxiliary_loss(), e.g. lcnet_*)")

    def _model_kwargs(self) -> dict[str, Any]:
        """``model.kwargs`` plus what the task derives from the data; a contradiction between them is an error."""
        kwargs = dict(self.cfg.model.kwargs)
        for key, value in self.task.model_kwargs().items():
            if key in kwargs and kwargs[key] != value:
                raise UserError(f"model.kwargs.{key}={kwargs[key]!r} contradicts the data, which gives {value!r} "
                                f"(remove the key, or change data.options)")
            kwargs[key] = value
        return kwargs

    def _create_model(self, name: str, *, kwargs: dict[str, Any] | None = None, checkpoint: str | None = None,
                      checkpoint_num_classes: int | None = None) -> nn.Module:
        try:
            return create_any_model(name, num_classes=self.num_classes, in_chans=self.data_config.in_chans,
                                    checkpoint_path=checkpoint, checkpoint_num_classes=checkpoint_num_classes,
                                    **(kwargs or {}))
        except TypeError as e:
            raise UserError(f"model {name}: {e} (check model.kwargs)") from None

    def _build_optimizer(self) -> None:
        from timm.optim import create_optimizer_v2

        o = self.cfg.optim
        self.lr = o.lr if o.lr is not None else o.lr_base * self._lr_scale(o.lr_base_scale, o.lr_base_size)
        extra: dict[str, Any] = {}
        if o.eps is not None:
            extra["eps"] = o.eps
        if o.betas is not None:
            extra["betas"] = tuple(o.betas)
        try:
            self.optimizer = create_optimizer_v2(self.model, opt=o.opt, lr=self.lr, weight_decay=o.weight_decay,
                                                 momentum=o.momentum, filter_bias_and_bn=o.filter_bias_and_bn,
                                                 **extra)
        except (ValueError, AssertionError) as e:
            raise UserError(f"optim.opt={o.opt!r}: {e}") from None
        if o.lr is None and self.lr < 1e-4 and self.main:
            log.warning("the learning rate is scaled to %.3g (optim.lr_base %.3g x global batch %d / "
                        "optim.lr_base_size %d): likely too small to learn; set optim.lr (e.g. --set optim.lr=1e-3) "
                        "or optim.lr_base_size", self.lr, o.lr_base, self.global_batch, o.lr_base_size)

    def _lr_scale(self, how: str, base_size: int) -> float:
        ratio = self.global_batch / base_size
        if how == "linear":
            return ratio
        if how == "sqrt":
            return math.sqrt(ratio)
        raise UserError(f"optim.lr_base_scale must be linear or sqrt, not {how!r}")

    def _build_schedule(self) -> None:
        self.scheduler, self.total_epochs = create_scheduler(
            self.cfg.sched, self.optimizer, updates_per_epoch=self.updates_per_epoch, max_steps=self.cfg.run.max_steps)

    def _build_loss(self) -> None:
        """The task's loss, with a frozen teacher when distillation is on; batch-level augmentation."""
        cfg = self.cfg
        self.batch_transform = self.task.batch_transform(cfg.aug)
        self.loss_fn = self.task.criterion(cfg.aug, self._build_teacher(), cfg.distill)
        if cfg.distill.type != "none" and hasattr(self.model, "set_distilled_training"):
            self.model.set_distilled_training(True)  # distilled variants return (head, head_dist) in training

    def _build_teacher(self) -> nn.Module | None:
        dc = self.cfg.distill
        if dc.type == "none":
            return None
        if not dc.teacher:
            raise UserError(f"distill.type={dc.type} needs distill.teacher (a model spec or a trained weights file)")
        if Path(dc.teacher).exists():
            teacher, meta = load_trained_model(dc.teacher)
            if int(meta["num_classes"]) != self.num_classes:
                raise UserError(f"teacher {dc.teacher} has {meta['num_classes']} classes, the data {self.num_classes}")
        else:
            if not dc.teacher_checkpoint:
                raise UserError("a teacher given by model name needs distill.teacher_checkpoint (its trained weights); "
                                "a random teacher teaches nothing")
            teacher = self._create_model(dc.teacher, checkpoint=dc.teacher_checkpoint)
        teacher.requires_grad_(False)
        teacher.eval()
        teacher = teacher.to(self.device)
        return teacher.to(memory_format=torch.channels_last) if self.channels_last else teacher

    def _build_wrappers(self) -> None:
        """DistributedDataParallel under torchrun; the EMA copy of the weights."""
        self.ddp = None
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=device_ids)
        self.ema = None
        if self.cfg.ema.enabled:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=self.cfg.ema.decay, use_warmup=self.cfg.ema.warmup,
                                  stochastic_rounding=False)

    def _build_validation(self) -> None:
        """The validation loader, sharded across ranks (the task's evaluator merges the shards)."""
        self.val_loader = None
        if self.val_split != "none":
            self.val_loader = self._eval_loader(self.val_split)

    def _eval_loader(self, split: str) -> torch.utils.data.DataLoader:
        dataset = self.task.eval_dataset(split)
        sampler = ShardSampler(len(dataset), num_replicas=self.dist.world_size, rank=self.dist.rank)
        return self._loader(dataset, self.cfg.data.eval_batch_size or 2 * self.cfg.data.batch_size, sampler=sampler)

    def _val_split(self) -> str:
        split = self.cfg.data.val_split
        if split not in ("val", "test", "none"):
            raise UserError(f"data.val_split must be val, test or none, not {split!r}")
        if split == "val" and self.bundle.val is None:
            return "test"
        return split

    def _init_progress(self, resuming: bool) -> None:
        self.epoch, self.micro, self.step = 0, 0, 0
        self.best_score, self.best_epoch = -math.inf, -1
        self.elapsed_prev = 0.0
        skipped = self.bundle.extra.get("skipped", [])
        self.bad_images: list[str] = [b.path for b in skipped]
        if self.main:
            for b in skipped:  # unreadable images, bad annotations (detection data with skip_bad)
                log.warning("left out %s: %s", b.path, b.error)
        self.history: list[dict[str, Any]] = []
        self.store = CheckpointStore(self.run_dir, keep=self.cfg.run.keep_checkpoints)
        self.logger = RunLogger(self.run_dir, metrics=self.task.logged_metrics, enabled=self.main,
                                tensorboard=self.cfg.run.tensorboard)
        self._last_report: Report | None = None
        self._validated_at = -1  # update count of the last validation in this process
        self.totals = EpochTotals()
        self._epoch_stats: dict[str, float] = {}
        if resuming:
            self._load_resume_state()
        if self.step == 0:
            self.logger.truncate(0)  # a fresh start in a folder left by a run killed before its first checkpoint
        if self.scheduler is not None:
            self.scheduler.step(self.epoch)
            self.scheduler.step_update(self.step)
        self._steps_at_start = self.step

    # --- state -------------------------------------------------------------------------------------------

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def elapsed(self) -> float:
        return self.elapsed_prev + (time.perf_counter() - self.t_start)

    def _meta(self, **extra: Any) -> dict[str, Any]:
        c = self.cfg
        return weights_metadata(c.model.name, self.model_kwargs, self.num_classes, self.task.class_names,
                                self.data_config, task=self.task.name, dataset=c.data.name,
                                dataset_options=c.data.options, dataset_root=c.data.root, epoch=self.epoch,
                                step=self.step, **extra)

    def _save_checkpoint(self) -> None:
        rng = D.all_gather_objects(self.dist, capture_rng_state())
        if self.main:
            state = {
                "version": STATE_VERSION,
                "epoch": self.epoch,
                "micro": self.micro,
                "step": self.step,
                "world_size": self.dist.world_size,
                "batch_size": self.cfg.data.batch_size,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": rng,
                "best_score": self.best_score,
                "best_epoch": self.best_epoch,
                "elapsed_s": self.elapsed(),
                "bad_images": list(self.bad_images),
                "history": json.dumps(self.history),
                "epoch_totals": self.totals.to_state(),
            }
            self.store.save(self.step, self.model.state_dict(), state, self._meta(weights="model", resumable=True))
        D.barrier(self.dist)

    def _load_resume_state(self) -> None:
        found = self.store.latest()
        if found is None:
            if self.main:
                log.info("%s has no checkpoint yet; starting from the beginning", self.run_dir)
            return
        weights_path, state_path, _ = found
        weights, _ = load_weights(weights_path)
        state = load_state(state_path)
        if state.get("version") != STATE_VERSION:
            raise UserError(f"{state_path}: trainer state version {state.get('version')} is not {STATE_VERSION}")
        if state["world_size"] != self.dist.world_size or state["batch_size"] != self.cfg.data.batch_size:
            raise UserError(f"{state_path} was written by {state['world_size']} process(es) with batch "
                            f"{state['batch_size']}; resume with the same (now {self.dist.world_size}, "
                            f"{self.cfg.data.batch_size}) to continue exactly")
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            if state["ema"] is None:
                raise UserError("ema.enabled was turned on after the run started; resume with the original setting")
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.micro, self.step = state["epoch"], state["micro"], state["step"]
        # checkpoints written before the task interface named these best_top1 / epoch_acc
        self.best_score = state.get("best_score", state.get("best_top1"))
        self.best_epoch = state["best_epoch"]
        self.elapsed_prev = state["elapsed_s"]
        self.bad_images = list(state["bad_images"])
        self.history = json.loads(state["history"])
        self.totals = EpochTotals.from_state(state.get("epoch_totals", state.get("epoch_acc")))
        restore_rng_state(state["rng"][self.dist.rank])
        self.logger.truncate(self.step)
        if self.main:
            log.info("resumed %s at epoch %d, update %d", self.run_dir, self.epoch, self.step)

    # --- the loop ----------------------------------------------------------------------------------------

    def run(self) -> RunResult:
        self.t_start = time.perf_counter()
        cfg = self.cfg
        max_steps = cfg.run.max_steps
        if self.main:
            length = f"{self.total_epochs} epochs x {self.updates_per_epoch} updates"
            if max_steps and max_steps < self.total_epochs * self.updates_per_epoch:
                length = f"{max_steps} updates (run.max_steps; an epoch has {self.updates_per_epoch})"
            log.info("%s: %s on %s (%d train samples, %d classes, input %s, normalization from %s); %s, global "
                     "batch %d, lr %.3g, device %s, %d process(es) -> %s", self.task.name, cfg.model.name,
                     cfg.data.name, len(self.train_set), self.num_classes, self.data_config.input_size,
                     self.data_config.norm_source, length, self.global_batch, self.lr, self.device,
                     self.dist.world_size, self.run_dir)
        while self.epoch < self.total_epochs and not (max_steps and self.step >= max_steps):
            stopped = self._train_epoch(max_steps)
            last = stopped or self.epoch + 1 >= self.total_epochs or bool(max_steps and self.step >= max_steps)
            self._end_epoch(full=not stopped, last=last)
            if stopped:
                break
        return self._finish()

    def _train_epoch(self, max_steps: int) -> bool:
        """Run (the rest of) one epoch; True when ``max_steps`` stopped it early."""
        cfg = self.cfg
        limit = self.updates_per_epoch * self.accum
        self.sampler.set_position(self.epoch, self.micro * cfg.data.batch_size)
        self.model.train()
        net = self.ddp or self.model
        t_epoch = time.perf_counter()
        if self.micro == 0:
            self.totals = EpochTotals()
        seen_here = 0
        bar = self._progress()
        log_t, log_seen = time.perf_counter(), 0
        for x, y in iterate(self.loader, skip_bad=cfg.data.skip_bad, on_bad=self._on_bad):
            if self.micro >= limit:
                break
            x, y = x.to(self.device, non_blocking=True), self.task.targets_to(y, self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            # mixup, dropout and drop-path draw from RNGs seeded by position, not by history
            seed_all(cfg.run.seed, _TRAIN_STREAM, self.dist.rank, self.epoch, self.micro)
            if self.batch_transform is not None:
                x, y = self.batch_transform(x, y)
            boundary = (self.micro + 1) % self.accum == 0
            sync = contextlib.nullcontext() if (self.ddp is None or boundary) else self.ddp.no_sync()
            with sync:
                loss_value = self._backward(net, x, y)
            self.micro += 1
            seen_here += len(x)
            log_seen += len(x)
            self.totals.add(loss_value, len(x))
            if not boundary:
                continue
            self._optimizer_step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{self.totals.mean_loss:.4f}", lr=f"{self.current_lr():.3g}", refresh=False)
            if self.step % cfg.run.log_every == 0:
                rate = log_seen * self.dist.world_size / max(time.perf_counter() - log_t, 1e-9)
                self._log_step(self.totals.mean_loss, rate, echo=bar is None)
                log_t, log_seen = time.perf_counter(), 0
            if max_steps and self.step >= max_steps:
                break
            if cfg.run.checkpoint_every and self.step % cfg.run.checkpoint_every == 0 and self.micro < limit:
                self._save_checkpoint()
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t_epoch
        self._epoch_stats = {"train_loss": self.totals.mean_loss, "epoch_time_s": elapsed,
                             "images_per_s": seen_here * self.dist.world_size / max(elapsed, 1e-9)}
        return bool(max_steps and self.step >= max_steps and self.micro < limit)

    def _backward(self, net: nn.Module, x: torch.Tensor, y: Any) -> float:
        """Forward, loss and backward of one micro-batch; returns the loss value (stops on NaN / inf)."""
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            loss = self.loss_fn(x, self.task.forward_train(net, x, y), y)
            if self.aux_loss_weight:  # computed by the forward pass just run (e.g. router balance)
                loss = loss + self.aux_loss_weight * self.model.auxiliary_loss().to(loss.dtype)
        loss_value = float(loss.detach())
        if not D.all_true(self.dist, math.isfinite(loss_value)):
            self._non_finite(loss_value)
        scaled = loss / self.accum
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
        else:
            scaled.backward()
        return loss_value

    def _optimizer_step(self) -> None:
        from timm.models import model_parameters
        from timm.utils import dispatch_clip_grad

        o = self.cfg.optim
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if o.clip_grad is not None:
            # timm excludes the classifier from adaptive clipping (its unit-wise norms are not meaningful there)
            params = model_parameters(self.model, exclude_head="agc" in o.clip_mode)
            dispatch_clip_grad(params, value=o.clip_grad, mode=o.clip_mode)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model, step=self.step)
        if self.scheduler is not None:
            self.scheduler.step_update(self.step)

    def _non_finite(self, value: float) -> None:
        found = self.store.latest()
        where = (f"the last good checkpoint is {found[0]} (update {found[2]}); resume from it with --resume "
                 f"{self.run_dir} after changing the recipe with --set" if found else
                 "no checkpoint had been written yet")
        raise NonFiniteLossError(
            f"loss became {value} at epoch {self.epoch}, update {self.step + 1}; stopped before updating the "
            f"weights. {where}. Lower optim.lr, enable clipping (optim.clip_grad), or check the data.")

    def _on_bad(self, bad: list) -> None:
        for b in bad:
            if b.path not in self.bad_images:
                self.bad_images.append(b.path)
                if self.main:
                    log.warning("skipped unreadable image %s: %s", b.path, b.error)

    def _progress(self) -> Any:
        if not (self.main and self.cfg.run.progress and sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        total = self.updates_per_epoch
        if self.cfg.run.max_steps:  # the updates this epoch will really run
            done = self.micro // self.accum
            total = min(total, done + max(self.cfg.run.max_steps - self.step, 0))
        return tqdm(total=total, initial=self.micro // self.accum, dynamic_ncols=True,
                    desc=f"epoch {self.epoch + 1}/{self.total_epochs}", leave=False)

    def _log_step(self, loss: float, rate: float, *, echo: bool) -> None:
        total = self.total_epochs * self.updates_per_epoch
        if self.cfg.run.max_steps:
            total = min(total, self.cfg.run.max_steps)
        done_here = self.step - self._steps_at_start
        eta = (total - self.step) * (time.perf_counter() - self.t_start) / max(done_here, 1)
        record = {"epoch": self.epoch, "step": self.step, "loss": loss, "lr": self.current_lr(),
                  "images_per_s": rate, "eta_s": eta}
        self.logger.step(record)
        if echo and self.main:
            log.info("epoch %d/%d update %d/%d loss %.4f lr %.3g %.0f img/s ETA %s", self.epoch + 1,
                     self.total_epochs, self.step, total, loss, self.current_lr(), rate, _hms(eta))

    # --- evaluation and the end of an epoch / of the run -----------------------------------------------------

    def _evaluate(self, loader: torch.utils.data.DataLoader, split: str) -> Report | None:
        """The task's report for ``loader`` (every rank evaluates its shard; rank 0 merges and returns it)."""
        evaluator = self.task.evaluator()
        skipped = run_inference(self.eval_model, loader, evaluator.update, device=self.device,
                                amp_dtype=self.amp_dtype, channels_last=self.channels_last,
                                skip_bad=self.cfg.data.skip_bad)
        parts = D.all_gather_objects(self.dist, (evaluator.state(), skipped))
        if not self.main:
            return None
        evaluator.merge([p[0] for p in parts])
        return evaluator.compute(skipped=[s for p in parts for s in p[1]],
                                 meta={"dataset": self.cfg.data.name, "model": self.cfg.model.name, "split": split,
                                       "epoch": self.epoch, "step": self.step})

    def _end_epoch(self, full: bool, last: bool = False) -> None:
        if last and self.cfg.run.bn_recalibration:
            self._recalibrate_batchnorm(self.cfg.run.bn_recalibration)
        report = self._evaluate(self.val_loader, self.val_split) if self.val_loader is not None else None
        metrics = report.metrics() if report is not None else {}
        score = D.broadcast_object(self.dist, metrics.get(self.task.primary_metric))
        record = {"epoch": self.epoch + 1 if full else self.epoch + self.micro / (self.updates_per_epoch * self.accum),
                  "step": self.step, "lr": self.current_lr(), **self._epoch_stats, "bad_images": len(self.bad_images)}
        prefix = "ema_val" if self.ema is not None else "val"
        record.update({f"{prefix}_{k}": v for k, v in metrics.items()})
        if full:
            self.epoch += 1
            self.micro = 0
            if self.scheduler is not None:
                self.scheduler.step(self.epoch, score)
        if self.main:
            self.history.append(record)
            self.logger.epoch(record)
            where = (f"epoch {self.epoch}/{self.total_epochs}" if full else
                     f"epoch {self.epoch + 1}/{self.total_epochs}, stopped at update {self.step} (run.max_steps)")
            msg = f"{where}: train loss {record['train_loss']:.4f}"
            if score is not None:
                msg += f", {self.val_split} {self.task.primary_metric} {score:.4g}"
            log.info("%s (%s, %.0f img/s)", msg, _hms(record["epoch_time_s"]), record["images_per_s"])
            meta = self._meta(weights="ema" if self.ema is not None else "model", val_split=self.val_split,
                              **{f"val_{self.task.primary_metric}": score})
            if score is not None and score > self.best_score:
                self.best_score, self.best_epoch = score, self.epoch
                save_weights(self.run_dir / "best.safetensors", self.eval_model.state_dict(), meta)
            save_weights(self.run_dir / "last.safetensors", self.eval_model.state_dict(), meta)
        self._last_report = report
        self._validated_at = self.step if self.val_loader is not None else -1
        self._save_checkpoint()

    def _warn_if_chance(self, primary: float | None) -> None:
        chance = self.task.chance_level()
        if primary is not None and primary <= 1.5 * chance:
            log.warning("test %s %.4g is at chance level (%.4g for %d classes): the model learned (almost) "
                        "nothing. Train longer (sched.epochs, run.max_steps=%s), check the learning rate "
                        "(%.3g) and the data.", self.task.primary_metric, primary, chance, self.num_classes,
                        self.cfg.run.max_steps or "0", self.lr)

    def _recalibrate_batchnorm(self, batches: int) -> None:
        """BatchNorm statistics of the final weights from the first ``batches`` training batches (eval
        transform, fixed order: every rank and every resumed run computes the same statistics)."""
        loader = self._loader(self.task.eval_dataset("train"), self.cfg.data.batch_size)
        used = recalibrate_batchnorm(self.eval_model, islice(loader, batches), device=self.device,
                                     channels_last=self.channels_last)
        if self.main and used:
            log.info("BatchNorm statistics re-estimated on %d training batches", used)

    def _finish(self) -> RunResult:
        # rank-consistent decision (only rank 0 holds reports): re-evaluate unless the last validation
        # in this process was already on the test split with the final weights
        report = self._last_report
        if not (self.val_split == "test" and self._validated_at == self.step):  # the final report is on test
            report = self._evaluate(self._eval_loader("test"), "test")
        metrics: dict[str, Any] = {}
        if self.main:
            report.meta.update({"weights": "last", "split": "test"})
            out = self.run_dir / "eval"
            report.save(out, plots=available("matplotlib"))
            if available("matplotlib"):
                self.task.visualize(self.eval_model, report, out, device=self.device)
            best = self.best_score if self.best_epoch >= 0 else None
            metrics = {
                "model": self.cfg.model.name, "dataset": self.cfg.data.name, "task": self.task.name,
                "epochs": self.epoch, "updates": self.step,
                **{f"test_{k}": v for k, v in report.metrics().items()},
                f"best_val_{self.task.primary_metric}": best, "best_epoch": self.best_epoch,
                "val_split": self.val_split, "elapsed_s": self.elapsed(), "global_batch": self.global_batch,
                "lr": self.lr, "world_size": self.dist.world_size, "device": str(self.device),
                "bad_images": len(self.bad_images), "skipped_files": self.bad_images[:100],
                "test_report": report.to_dict(),
            }
            atomic_write_text(self.run_dir / "results.json", json.dumps(metrics, indent=2))
            primary = report.metrics()[self.task.primary_metric]
            self._warn_if_chance(primary)
            log.info("training done in %s; test %s %.4g (last weights); results in %s", _hms(self.elapsed()),
                     self.task.primary_metric, primary, self.run_dir)
        metrics = D.broadcast_object(self.dist, metrics)
        self.logger.close()
        best_path = self.run_dir / "best.safetensors"
        return RunResult(self.run_dir, best_path if best_path.is_file() else None, self.run_dir / "last.safetensors",
                         metrics, self.cfg)


# ---------------------------------------------------------------------------------------------------------
# public entry points


def _new_run_dir(cfg: TrainConfig) -> Path:
    name = cfg.run.name or (f"{cfg.model.name.replace(':', '-')}-{Path(cfg.data.name).name}-"
                            f"{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    return Path(cfg.run.output) / name


# what --resume may change: settings that do not alter the run's past or its arithmetic
RESUMABLE_CHANGES = frozenset({
    "sched.epochs", "run.max_steps", "run.progress", "run.tensorboard", "run.log_every", "run.checkpoint_every",
    "run.keep_checkpoints", "run.threads", "run.keep_memory", "run.device", "run.bn_recalibration", "data.workers",
    "data.eval_batch_size", "data.skip_bad",
})


def train(config: TrainConfig, *, run_dir: str | os.PathLike[str] | None = None, resume: bool = False) -> RunResult:
    """Train with ``config``; the outputs go to ``run_dir`` (default ``run.output/run.name``).

    ``resume=True`` continues the run in ``run_dir`` from its last checkpoint (see :func:`resume`).
    Under torchrun every process calls this; rank 0 writes the files. Everything is built and checked before
    anything is written: a run that cannot start leaves no folder behind (and a refused resume leaves the
    run as it was).
    """
    cfg = copy.deepcopy(config)
    validate_config(cfg)
    owns_group = not torch.distributed.is_initialized()  # a caller's process group is left to the caller
    dist = D.setup(cfg.run.device)
    owns_group = owns_group and dist.enabled
    threads = torch.get_num_threads()
    try:
        with _deterministic(cfg.run.deterministic):
            target = Path(run_dir) if run_dir is not None else _new_run_dir(cfg)
            target = Path(D.broadcast_object(dist, str(target)))
            if not resume and (target / "last.json").exists():
                raise UserError(f"{target} already holds a run; continue it with --resume {target} or choose "
                                "another run.name")
            blocking = next((q for q in (target, *target.parents) if q.exists() and not q.is_dir()), None)
            if blocking is not None:
                raise UserError(f"{blocking} is a file, not a folder: the run folder {target} cannot be made there; "
                                "choose another run.output / run.name (--output / --name)")
            cfg.run.name = target.name
            trainer = Trainer(cfg, dist, target, resuming=resume)  # builds and checks everything first
            if dist.is_main:
                target.mkdir(parents=True, exist_ok=True)
                save_config(cfg, target / "config.yaml")
            D.barrier(dist)
            return trainer.run()
    finally:
        torch.set_num_threads(threads)
        if owns_group:
            D.cleanup(dist)


def resume(run_dir: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> RunResult:
    """Continue the run in ``run_dir`` from its last checkpoint with its saved ``config.yaml``.

    ``overrides`` may change what does not alter the past (:data:`RESUMABLE_CHANGES`: ``sched.epochs`` to train
    longer, ``data.workers``, logging...); anything else — the model, the data, the batch size, the optimizer —
    is refused before anything is written, since the run would no longer continue exactly.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir}: no config.yaml (is it a litevision run folder?)")
    saved = load_config(run_dir / "config.yaml")
    cfg = load_config(run_dir / "config.yaml", overrides)
    changed = [k for k in _changed_keys(saved.to_dict(), cfg.to_dict()) if k not in RESUMABLE_CHANGES]
    if changed:
        raise UserError(f"--resume cannot change {', '.join(changed)}: the run would not continue exactly. "
                        f"Start a new run for that (changeable on resume: {', '.join(sorted(RESUMABLE_CHANGES))})")
    return train(cfg, run_dir=run_dir, resume=True)


def _changed_keys(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(before) | set(after)):
        a, b = before.get(k), after.get(k)
        if isinstance(a, dict) and isinstance(b, dict) and not prefix:  # sections
            keys += _changed_keys(a, b, f"{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys
