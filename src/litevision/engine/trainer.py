"""The training loop: ``train(config) -> RunResult``.

Built from timm's parts rather than re-written: ``create_optimizer_v2``, ``create_scheduler_v2``,
``dispatch_clip_grad`` (adaptive gradient clipping included), ``Mixup`` and ``ModelEmaV3``. Adds what a
team needs around them: AMP, channels-last, gradient accumulation, DDP under torchrun, per-epoch
validation with the shared evaluation code, best/last weights, CSV/JSONL logs, hard/soft distillation,
and checkpoints that resume exactly.

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
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.data.loader import ResumableSampler, ShardSampler, iterate, make_loader, seed_all
from litevision.engine import distributed as D
from litevision.engine.checkpoint import (
    CheckpointStore,
    atomic_write_text,
    capture_rng_state,
    load_state,
    load_weights,
    restore_rng_state,
    save_weights,
)
from litevision.engine.config import TrainConfig, load_config, save_config
from litevision.engine.evaluate import EvalReport, compute_report, predict
from litevision.engine.logger import RunLogger
from litevision.engine.pipeline import (
    build_eval_dataset,
    build_model,
    build_train_dataset,
    load_bundle,
    load_trained_model,
    resolve_preprocess,
    weights_metadata,
)
from litevision.errors import UserError

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


# ---------------------------------------------------------------------------------------------------------
# losses


class TrainLoss(nn.Module):
    """Classification loss plus optional DeiT-style distillation from a frozen teacher.

    A model that returns ``(class_logits, distill_logits)`` in training (distilled LSNet / DeiT variants)
    gets the class loss on the first and the distillation loss on the second; other models get both on
    their single output. ``hard``: cross-entropy to the teacher's argmax; ``soft``: KL divergence at
    temperature ``tau``. Total = (1 - alpha) * class loss + alpha * distillation loss.
    """

    def __init__(self, base: nn.Module, teacher: nn.Module | None = None, kind: str = "none", alpha: float = 0.5,
                 tau: float = 1.0) -> None:
        super().__init__()
        if kind not in ("none", "hard", "soft"):
            raise UserError(f"distill.type must be none, hard or soft, not {kind!r}")
        if kind != "none" and teacher is None:
            raise UserError(f"distill.type={kind} needs distill.teacher")
        self.base, self.kind, self.alpha, self.tau = base, kind, alpha, tau
        self.teacher = teacher

    def forward(self, inputs: Tensor, outputs: Tensor | tuple[Tensor, Tensor], targets: Tensor) -> Tensor:
        if isinstance(outputs, tuple | list):
            cls_out, dist_out = outputs[0], outputs[1]
        else:
            cls_out = dist_out = outputs
        loss = self.base(cls_out, targets)
        if self.kind == "none":
            if dist_out is not cls_out:
                loss = (loss + self.base(dist_out, targets)) / 2
            return loss
        with torch.no_grad():
            t = self.teacher(inputs)
            t = (sum(t) / len(t)) if isinstance(t, tuple | list) else t
        if self.kind == "hard":
            kd = F.cross_entropy(dist_out, t.argmax(dim=1))
        else:
            kd = F.kl_div(F.log_softmax(dist_out / self.tau, dim=1), F.log_softmax(t / self.tau, dim=1),
                          reduction="sum", log_target=True) * (self.tau ** 2) / dist_out.numel()
        return loss * (1 - self.alpha) + kd * self.alpha


# ---------------------------------------------------------------------------------------------------------
# the trainer


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


class Trainer:
    """One training run. Use :func:`train` / :func:`resume`; the class is here for readers and tests."""

    def __init__(self, cfg: TrainConfig, dist: D.DistInfo, run_dir: Path, resuming: bool) -> None:
        from timm.optim import create_optimizer_v2
        from timm.scheduler import create_scheduler_v2

        self.cfg, self.dist, self.run_dir = cfg, dist, run_dir
        self.main = dist.is_main
        self.device = dist.device
        r = cfg.run
        if r.threads > 0:
            torch.set_num_threads(r.threads)
        _seed_everything(r.seed + dist.rank)

        # data
        d = cfg.data
        self.bundle = load_bundle(d.name, d.options, root=d.root, skip_bad=d.skip_bad)
        self.num_classes = self.bundle.num_classes
        self.pre = resolve_preprocess(cfg.model.name, self.bundle, input_size=d.input_size, in_chans=d.in_chans,
                                      crop_pct=d.crop_pct, interpolation=d.interpolation, norm=d.norm, mean=d.mean,
                                      std=d.std, pretrained=cfg.model.checkpoint is not None)
        self.train_set = build_train_dataset(self.bundle, self.pre, cfg.aug, seed=r.seed)
        self.val_split = self._val_split()
        self.sampler = ResumableSampler(self.train_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                        seed=r.seed)
        self.loader = make_loader(self.train_set, batch_size=d.batch_size, sampler=self.sampler, workers=d.workers,
                                  drop_last=True, pin_memory=self.device.type == "cuda", seed=r.seed)
        self.accum = max(1, cfg.optim.accum_steps)
        batches = self.sampler.num_samples // d.batch_size
        self.updates_per_epoch = batches // self.accum
        if self.updates_per_epoch == 0:
            raise UserError(f"{len(self.train_set)} training samples over {dist.world_size} process(es) do not "
                            f"fill one update of batch {d.batch_size} x {self.accum} accumulation steps; "
                            "lower data.batch_size")

        # model, optimizer, schedule
        self.model = build_model(cfg.model.name, num_classes=self.num_classes, in_chans=self.pre.input_size[0],
                                 kwargs=cfg.model.kwargs, checkpoint=cfg.model.checkpoint,
                                 checkpoint_num_classes=cfg.model.checkpoint_num_classes).to(self.device)
        self.channels_last = r.channels_last if r.channels_last is not None else self.device.type == "cuda"
        if self.channels_last and any(p.dim() == 5 for p in self.model.parameters()):  # 3-D convs (HybridSN)
            if r.channels_last:
                raise UserError(f"run.channels_last=true: {cfg.model.name} has 3-D convolutions; the channels-last "
                                "layout is for 2-D image models")
            self.channels_last = False
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = _amp_dtype(r.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        o = cfg.optim
        self.global_batch = d.batch_size * self.accum * dist.world_size
        self.lr = o.lr if o.lr is not None else o.lr_base * self._lr_scale(o.lr_base_scale, o.lr_base_size)
        opt_kwargs: dict[str, Any] = {}
        if o.eps is not None:
            opt_kwargs["eps"] = o.eps
        if o.betas is not None:
            opt_kwargs["betas"] = tuple(o.betas)
        try:
            self.optimizer = create_optimizer_v2(self.model, opt=o.opt, lr=self.lr, weight_decay=o.weight_decay,
                                                 momentum=o.momentum, filter_bias_and_bn=o.filter_bias_and_bn,
                                                 **opt_kwargs)
        except (ValueError, AssertionError) as e:
            raise UserError(f"optim.opt={o.opt!r}: {e}") from None
        s = cfg.sched
        # run.max_steps shorter than the run: the schedule (warm-up, decay) is compressed to end with it,
        # as one "epoch" of max_steps updates with the epoch-counted settings scaled alike
        epochs, warmup, decay, cooldown, per_epoch = s.epochs, s.warmup_epochs, s.decay_epochs, s.cooldown_epochs, \
            self.updates_per_epoch
        compressed = bool(cfg.run.max_steps) and not s.step_on_epochs \
            and cfg.run.max_steps < s.epochs * self.updates_per_epoch
        if compressed:
            epochs, warmup, cooldown, per_epoch = 1, s.warmup_epochs / s.epochs, 0, cfg.run.max_steps
            decay = s.decay_epochs / s.epochs if s.decay_epochs else s.decay_epochs
        try:
            self.scheduler, self.total_epochs = create_scheduler_v2(
                self.optimizer, sched=s.name, num_epochs=epochs, decay_epochs=decay, decay_rate=s.decay_rate,
                cooldown_epochs=cooldown, min_lr=s.min_lr, warmup_lr=s.warmup_lr, warmup_epochs=warmup,
                step_on_epochs=s.step_on_epochs, updates_per_epoch=per_epoch)
            if compressed:  # the epochs the data loop would run (it stops at max_steps)
                self.total_epochs = s.epochs + s.cooldown_epochs
        except ValueError as e:
            raise UserError(f"sched: {e}") from None
        if self.scheduler is None:  # sched.name == "none": constant lr
            self.total_epochs = s.epochs

        # augmentation on batches, loss, EMA, distillation
        a = cfg.aug
        self.mixup = None
        if a.mixup > 0 or a.cutmix > 0:
            from timm.data import Mixup

            self.mixup = Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, prob=a.mixup_prob,
                               switch_prob=a.mixup_switch_prob, mode=a.mixup_mode, label_smoothing=a.smoothing,
                               num_classes=self.num_classes)
        if self.mixup is not None:
            from timm.loss import SoftTargetCrossEntropy

            base: nn.Module = SoftTargetCrossEntropy()
        else:
            base = nn.CrossEntropyLoss(label_smoothing=a.smoothing)
        self.loss_fn = TrainLoss(base, self._build_teacher(), cfg.distill.type, cfg.distill.alpha, cfg.distill.tau)
        if cfg.distill.type != "none" and hasattr(self.model, "set_distilled_training"):
            self.model.set_distilled_training(True)  # distilled variants return (head, head_dist) in training
        self.aux_loss_weight = cfg.model.aux_loss_weight
        if self.aux_loss_weight and not callable(getattr(self.model, "auxiliary_loss", None)):
            raise UserError(f"model.aux_loss_weight={self.aux_loss_weight}: {cfg.model.name} has no auxiliary loss "
                            "(models that have one define auxiliary_loss(), e.g. lcnet_*)")

        self.ddp = None
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                                               else None)
        self.ema = None
        if cfg.ema.enabled:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=cfg.ema.decay, use_warmup=cfg.ema.warmup,
                                  stochastic_rounding=False)

        # validation loader (sharded across ranks, gathered for metrics)
        self.val_loader = None
        if self.val_split != "none":
            val_set = build_eval_dataset(self.bundle, self.pre, self.val_split)
            self.val_loader = make_loader(val_set, batch_size=d.eval_batch_size or 2 * d.batch_size,
                                          sampler=ShardSampler(len(val_set), num_replicas=dist.world_size,
                                                               rank=dist.rank),
                                          workers=d.workers, pin_memory=self.device.type == "cuda")

        # progress state
        self.epoch, self.micro, self.step = 0, 0, 0
        self.best_top1, self.best_epoch = -math.inf, -1
        self.elapsed_prev = 0.0
        self.bad_images: list[str] = [b.path for b in self.bundle.extra.get("skipped", [])]
        self.history: list[dict[str, Any]] = []
        self.store = CheckpointStore(run_dir, keep=r.keep_checkpoints)
        self.logger = RunLogger(run_dir, enabled=self.main, tensorboard=r.tensorboard)
        self._last_report: EvalReport | None = None
        self._validated_at = -1  # update count of the last validation in this process
        self._epoch_acc: list = [0.0, 0, 0]
        self._epoch_stats: dict[str, float] = {}
        if resuming:
            self._load_resume_state()
        if self.step == 0:
            self.logger.truncate(0)  # a fresh start in a folder left by a run killed before its first checkpoint
        self._apply_schedule()
        self._steps_at_start = self.step

    # --- setup helpers ---------------------------------------------------------------------------------

    def _lr_scale(self, how: str, base_size: int) -> float:
        ratio = self.global_batch / base_size
        if how == "linear":
            return ratio
        if how == "sqrt":
            return math.sqrt(ratio)
        raise UserError(f"optim.lr_base_scale must be linear or sqrt, not {how!r}")

    def _val_split(self) -> str:
        split = self.cfg.data.val_split
        if split not in ("val", "test", "none"):
            raise UserError(f"data.val_split must be val, test or none, not {split!r}")
        if split == "val" and self.bundle.val is None:
            return "test"
        return split

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
            teacher = build_model(dc.teacher, num_classes=self.num_classes, in_chans=self.pre.input_size[0],
                                  checkpoint=dc.teacher_checkpoint)
        teacher.requires_grad_(False)
        teacher.eval()
        teacher = teacher.to(self.device)
        return teacher.to(memory_format=torch.channels_last) if self.channels_last else teacher

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _meta(self, **extra: Any) -> dict[str, Any]:
        return weights_metadata(self.cfg.model.name, self.cfg.model.kwargs, self.num_classes,
                                self.bundle.class_names, self.pre, dataset=self.cfg.data.name,
                                dataset_options=self.cfg.data.options, dataset_root=self.cfg.data.root,
                                epoch=self.epoch, step=self.step, **extra)

    def _apply_schedule(self) -> None:
        if self.scheduler is not None:
            self.scheduler.step(self.epoch)
            self.scheduler.step_update(self.step)

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # --- checkpoints -----------------------------------------------------------------------------------

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
                "best_top1": self.best_top1,
                "best_epoch": self.best_epoch,
                "elapsed_s": self.elapsed(),
                "bad_images": list(self.bad_images),
                "history": json.dumps(self.history),
                "epoch_acc": list(self._epoch_acc),
            }
            self.store.save(self.step, self.model.state_dict(), state, self._meta(weights="model", resumable=True))
        D.barrier(self.dist)

    def _load_resume_state(self) -> None:
        found = self.store.latest()
        if found is None:
            if self.main:
                print(f"litevision train: {self.run_dir} has no checkpoint yet; starting from the beginning")
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
        self.best_top1, self.best_epoch = state["best_top1"], state["best_epoch"]
        self.elapsed_prev = state["elapsed_s"]
        self.bad_images = list(state["bad_images"])
        self.history = json.loads(state["history"])
        self._epoch_acc = list(state["epoch_acc"])
        restore_rng_state(state["rng"][self.dist.rank])
        self.logger.truncate(self.step)
        if self.main:
            print(f"litevision train: resumed {self.run_dir} at epoch {self.epoch}, update {self.step}")

    # --- loop ------------------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self.elapsed_prev + (time.perf_counter() - self.t_start)

    def run(self) -> RunResult:
        self.t_start = time.perf_counter()
        cfg = self.cfg
        max_steps = cfg.run.max_steps
        if self.main:
            print(f"litevision train: {cfg.model.name} on {cfg.data.name} ({len(self.train_set)} train images, "
                  f"{self.num_classes} classes, input {self.pre.input_size}, normalization from "
                  f"{self.pre.norm_source}); "
                  f"{self.total_epochs} epochs x {self.updates_per_epoch} updates, global batch {self.global_batch}, "
                  f"lr {self.lr:.3g}, device {self.device}, {self.dist.world_size} process(es) -> {self.run_dir}")
        while self.epoch < self.total_epochs and not (max_steps and self.step >= max_steps):
            partial = self._train_epoch(max_steps)
            last = partial or self.epoch + 1 >= self.total_epochs or bool(max_steps and self.step >= max_steps)
            self._end_epoch(full=not partial, last=last)
            if partial:
                break
        return self._finish()

    def _train_epoch(self, max_steps: int) -> bool:
        """Run (the rest of) one epoch; True when ``max_steps`` stopped it early."""
        cfg = self.cfg
        bs = cfg.data.batch_size
        limit = self.updates_per_epoch * self.accum
        self.sampler.set_position(self.epoch, self.micro * bs)
        self.model.train()
        net = self.ddp or self.model
        t_epoch = time.perf_counter()
        if self.micro == 0:
            self._epoch_acc = [0.0, 0, 0]  # loss sum, micro-batches, images: kept in checkpoints for the epoch row
        acc = self._epoch_acc
        seen_here = 0
        bar = self._progress()
        log_t, log_seen = time.perf_counter(), 0
        batches = iterate(self.loader, skip_bad=cfg.data.skip_bad, on_bad=self._on_bad)
        for x, y in batches:
            if self.micro >= limit:
                break
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            # mixup, dropout and drop-path draw from RNGs seeded by position, not by history
            seed_all(cfg.run.seed, _TRAIN_STREAM, self.dist.rank, self.epoch, self.micro)
            if self.mixup is not None:
                x, y = self.mixup(x, y)
            boundary = (self.micro + 1) % self.accum == 0
            sync = contextlib.nullcontext() if (self.ddp is None or boundary) else self.ddp.no_sync()
            with sync:
                with (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                      else contextlib.nullcontext()):
                    out = net(x)
                    loss = self.loss_fn(x, out, y)
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
            self.micro += 1
            seen_here += x.shape[0]
            log_seen += x.shape[0]
            acc[0] += loss_value
            acc[1] += 1
            acc[2] += x.shape[0]
            if not boundary:
                continue
            self._optimizer_step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{acc[0] / acc[1]:.4f}", lr=f"{self.current_lr():.3g}", refresh=False)
            if self.step % cfg.run.log_every == 0:
                rate = log_seen * self.dist.world_size / max(time.perf_counter() - log_t, 1e-9)
                self._log_step(acc[0] / acc[1], rate, bar is None)
                log_t, log_seen = time.perf_counter(), 0
            if max_steps and self.step >= max_steps:
                break
            if cfg.run.checkpoint_every and self.step % cfg.run.checkpoint_every == 0 and self.micro < limit:
                self._save_checkpoint()
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t_epoch
        self._epoch_stats = {"train_loss": acc[0] / max(acc[1], 1), "epoch_time_s": elapsed,
                             "images_per_s": seen_here * self.dist.world_size / max(elapsed, 1e-9)}
        return bool(max_steps and self.step >= max_steps and self.micro < limit)

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
                    print(f"litevision train: skipped unreadable image {b.path}: {b.error}", file=sys.stderr)

    def _progress(self) -> Any:
        if not (self.main and self.cfg.run.progress and sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(total=self.updates_per_epoch, initial=self.micro // self.accum, dynamic_ncols=True,
                    desc=f"epoch {self.epoch + 1}/{self.total_epochs}", leave=False)

    def _log_step(self, loss: float, rate: float, echo: bool) -> None:
        total = self.total_epochs * self.updates_per_epoch
        if self.cfg.run.max_steps:
            total = min(total, self.cfg.run.max_steps)
        done_here = self.step - self._steps_at_start
        eta = (total - self.step) * (time.perf_counter() - self.t_start) / max(done_here, 1)
        record = {"epoch": self.epoch, "step": self.step, "loss": loss, "lr": self.current_lr(),
                  "images_per_s": rate, "eta_s": eta}
        self.logger.step(record)
        if echo and self.main:
            print(f"epoch {self.epoch + 1}/{self.total_epochs} update {self.step}/{total} loss {loss:.4f} "
                  f"lr {self.current_lr():.3g} {rate:.0f} img/s ETA {_hms(eta)}", flush=True)

    def _validate(self, split_loader: Any) -> EvalReport | None:
        preds = predict(self.eval_model, split_loader, device=self.device, amp_dtype=self.amp_dtype,
                        channels_last=self.channels_last, skip_bad=self.cfg.data.skip_bad)
        parts = D.all_gather_objects(self.dist, (preds.logits, preds.targets, preds.skipped))
        if not self.main:
            return None
        logits = torch.cat([p[0] for p in parts])
        targets = torch.cat([p[1] for p in parts])
        skipped = [s for p in parts for s in p[2]]
        return compute_report(logits, targets, self.bundle.class_names, skipped=skipped,
                              meta={"dataset": self.cfg.data.name, "model": self.cfg.model.name,
                                    "epoch": self.epoch, "step": self.step})

    def _end_epoch(self, full: bool, last: bool = False) -> None:
        if last and self.cfg.run.bn_recalibration:
            self._recalibrate_batchnorm(self.cfg.run.bn_recalibration)
        report = self._validate(self.val_loader) if self.val_loader is not None else None
        top1 = D.broadcast_object(self.dist, report.top1 if report is not None else None)
        record = {"epoch": self.epoch + 1 if full else self.epoch + self.micro / (self.updates_per_epoch * self.accum),
                  "step": self.step, "lr": self.current_lr(), **self._epoch_stats,
                  "bad_images": len(self.bad_images)}
        prefix = "ema_val" if self.ema is not None else "val"
        if report is not None:
            record.update({f"{prefix}_top1": report.top1, f"{prefix}_top5": report.top5, f"{prefix}_loss": report.loss})
        if full:
            self.epoch += 1
            self.micro = 0
            if self.scheduler is not None:
                self.scheduler.step(self.epoch, top1)
        if self.main:
            self.history.append(record)
            self.logger.epoch(record)
            msg = f"epoch {record['epoch']:g}/{self.total_epochs}: train loss {record['train_loss']:.4f}"
            if report is not None:
                msg += f", {self.val_split} top-1 {report.top1:.3f}%"
            print(msg + f" ({_hms(record['epoch_time_s'])}, {record['images_per_s']:.0f} img/s)", flush=True)
            meta = self._meta(weights="ema" if self.ema is not None else "model",
                              val_top1=report.top1 if report is not None else None, val_split=self.val_split)
            if report is not None and report.top1 > self.best_top1:
                self.best_top1, self.best_epoch = report.top1, self.epoch
                save_weights(self.run_dir / "best.safetensors", self.eval_model.state_dict(), meta)
            save_weights(self.run_dir / "last.safetensors", self.eval_model.state_dict(), meta)
        self._last_report = report
        self._validated_at = self.step if self.val_loader is not None else -1
        self._save_checkpoint()

    def _recalibrate_batchnorm(self, batches: int) -> None:
        """BatchNorm statistics of the final weights from the first ``batches`` training batches (eval
        transform, fixed order: every rank and every resumed run computes the same statistics)."""
        from itertools import islice

        from litevision.engine.batchnorm import recalibrate_batchnorm

        loader = make_loader(build_eval_dataset(self.bundle, self.pre, "train"), batch_size=self.cfg.data.batch_size,
                             workers=self.cfg.data.workers)
        used = recalibrate_batchnorm(self.eval_model, islice(loader, batches), device=self.device,
                                     channels_last=self.channels_last)
        if self.main and used:
            print(f"BatchNorm statistics re-estimated on {used} training batches", flush=True)

    def _finish(self) -> RunResult:
        # rank-consistent decision (only rank 0 holds reports): re-evaluate unless the last validation
        # in this process was already on the test split with the final weights
        report = self._last_report
        if not (self.val_split == "test" and self._validated_at == self.step):  # the final report is on test
            test_loader = make_loader(build_eval_dataset(self.bundle, self.pre, "test"),
                                      batch_size=self.cfg.data.eval_batch_size or 2 * self.cfg.data.batch_size,
                                      sampler=ShardSampler(len(self.bundle.test), num_replicas=self.dist.world_size,
                                                           rank=self.dist.rank), workers=self.cfg.data.workers)
            report = self._validate(test_loader)
        metrics: dict[str, Any] = {}
        if self.main:
            report.meta.update({"weights": "last", "split": "test"})
            report.save(self.run_dir / "eval")
            metrics = {
                "model": self.cfg.model.name, "dataset": self.cfg.data.name, "epochs": self.epoch, "updates": self.step,
                "test_top1": report.top1, "test_top5": report.top5, "test_loss": report.loss,
                "best_val_top1": self.best_top1 if self.best_epoch >= 0 else None, "best_epoch": self.best_epoch,
                "val_split": self.val_split, "elapsed_s": self.elapsed(), "global_batch": self.global_batch,
                "lr": self.lr, "world_size": self.dist.world_size, "device": str(self.device),
                "bad_images": len(self.bad_images), "skipped_files": self.bad_images[:100],
                "test_report": report.to_dict(),
            }
            atomic_write_text(self.run_dir / "results.json", json.dumps(metrics, indent=2))
            print(f"litevision train: done in {_hms(self.elapsed())}; test top-1 {report.top1:.3f}% "
                  f"(last weights); results in {self.run_dir}", flush=True)
        metrics = D.broadcast_object(self.dist, metrics)
        self.logger.close()
        best = self.run_dir / "best.safetensors"
        return RunResult(self.run_dir, best if best.is_file() else None, self.run_dir / "last.safetensors", metrics,
                         self.cfg)


def _hms(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ---------------------------------------------------------------------------------------------------------
# public entry points


def _new_run_dir(cfg: TrainConfig) -> Path:
    name = cfg.run.name or (f"{cfg.model.name.replace(':', '-')}-{Path(cfg.data.name).name}-"
                            f"{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    return Path(cfg.run.output) / name


def train(config: TrainConfig, *, run_dir: str | os.PathLike[str] | None = None, resume: bool = False) -> RunResult:
    """Train with ``config``; the outputs go to ``run_dir`` (default ``run.output/run.name``).

    ``resume=True`` continues the run in ``run_dir`` from its last checkpoint (see :func:`resume`).
    Under torchrun every process calls this; rank 0 writes the files.
    """
    cfg = copy.deepcopy(config)
    owns_group = not torch.distributed.is_initialized()  # a caller's process group is left to the caller
    dist = D.setup(cfg.run.device)
    owns_group = owns_group and dist.enabled
    threads = torch.get_num_threads()
    try:
        with _deterministic(cfg.run.deterministic):
            target = Path(run_dir) if run_dir is not None else _new_run_dir(cfg)
            target = Path(D.broadcast_object(dist, str(target)))
            if dist.is_main:
                if not resume and (target / "last.json").exists():
                    raise UserError(f"{target} already holds a run; continue it with --resume {target} or choose "
                                    "another run.name")
                target.mkdir(parents=True, exist_ok=True)
                cfg.run.name = target.name
                save_config(cfg, target / "config.yaml")
            D.barrier(dist)
            return Trainer(cfg, dist, target, resuming=resume).run()
    finally:
        torch.set_num_threads(threads)
        if owns_group:
            D.cleanup(dist)


def resume(run_dir: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> RunResult:
    """Continue the run in ``run_dir`` from its last checkpoint with its saved ``config.yaml``.

    ``overrides`` may change what does not alter the past (e.g. ``sched.epochs`` to train longer,
    ``data.workers``); the batch size and process count must stay the same for an exact continuation.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir}: no config.yaml (is it a litevision run folder?)")
    cfg = load_config(run_dir / "config.yaml", overrides)
    return train(cfg, run_dir=run_dir, resume=True)
