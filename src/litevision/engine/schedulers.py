"""Learning-rate schedules: timm's schedulers by name, plus Keras' inverse-time decay (HybridSN's protocol).

``inverse_time``: ``lr_t = lr / (1 + decay_rate * t)`` with ``t`` counted in optimizer updates (or epochs
with ``sched.step_on_epochs``), as Keras' ``Adam(decay=...)`` applies it; the authors of HybridSN trained with
``decay=1e-6``. A linear warm-up from ``warmup_lr`` is available as for timm's schedulers.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler

from litevision.errors import UserError

OWN_SCHEDULERS = ("inverse_time",)


class InverseTimeLRScheduler(Scheduler):
    """``lr / (1 + decay_rate * t)`` after an optional linear warm-up of ``warmup_t`` steps."""

    def __init__(self, optimizer: torch.optim.Optimizer, decay_rate: float, *, warmup_t: int = 0,
                 warmup_lr_init: float = 0.0, t_in_epochs: bool = False) -> None:
        if decay_rate < 0:
            raise UserError(f"sched.decay_rate must be >= 0 for inverse_time decay, got {decay_rate}")
        super().__init__(optimizer, param_group_field="lr", t_in_epochs=t_in_epochs)
        self.decay_rate, self.warmup_t, self.warmup_lr_init = decay_rate, warmup_t, warmup_lr_init

    def _get_lr(self, t: int) -> list[float]:
        if t < self.warmup_t:
            return [self.warmup_lr_init + t * (v - self.warmup_lr_init) / self.warmup_t for v in self.base_values]
        return [v / (1.0 + self.decay_rate * t) for v in self.base_values]


def create_scheduler(sched: Any, optimizer: torch.optim.Optimizer, *, updates_per_epoch: int,
                     max_steps: int = 0) -> tuple[Scheduler | None, int]:
    """(scheduler, number of epochs to run) for the recipe's ``sched`` section.

    ``max_steps`` shorter than the run compresses the schedule (warm-up, decay) to end with it, as one
    "epoch" of ``max_steps`` updates with the epoch-counted settings scaled alike.
    """
    if sched.name in OWN_SCHEDULERS:
        per_epoch = 1 if sched.step_on_epochs else updates_per_epoch
        return InverseTimeLRScheduler(optimizer, sched.decay_rate, warmup_t=round(sched.warmup_epochs * per_epoch),
                                      warmup_lr_init=sched.warmup_lr, t_in_epochs=sched.step_on_epochs), sched.epochs
    epochs, warmup, decay, cooldown, per_epoch = (sched.epochs, sched.warmup_epochs, sched.decay_epochs,
                                                  sched.cooldown_epochs, updates_per_epoch)
    compressed = bool(max_steps) and not sched.step_on_epochs and max_steps < sched.epochs * updates_per_epoch
    if compressed:
        epochs, warmup, cooldown, per_epoch = 1, sched.warmup_epochs / sched.epochs, 0, max_steps
        decay = sched.decay_epochs / sched.epochs if sched.decay_epochs else sched.decay_epochs
    try:
        scheduler, total_epochs = create_scheduler_v2(
            optimizer, sched=sched.name, num_epochs=epochs, decay_epochs=decay, decay_rate=sched.decay_rate,
            cooldown_epochs=cooldown, min_lr=sched.min_lr, warmup_lr=sched.warmup_lr, warmup_epochs=warmup,
            step_on_epochs=sched.step_on_epochs, updates_per_epoch=per_epoch)
    except (ValueError, AssertionError) as e:
        raise UserError(f"sched: {e}") from None
    if scheduler is None:  # sched.name == "none": constant lr
        return None, sched.epochs
    if compressed:  # the epochs the data loop would run (it stops at max_steps)
        total_epochs = sched.epochs + sched.cooldown_epochs
    return scheduler, total_epochs
