"""Re-estimating BatchNorm statistics from data after training (SWA's ``update_bn``, restricted to BN).

Running statistics are an exponential average over the last ~1/momentum updates. After a short run the
weights moved a lot during those updates, so the averages describe networks that no longer exist; in eval
mode such a model can fall to chance level while it classifies well with batch statistics (measured: a
ShuffleNetV2 after 40 updates, 11% in eval mode, 66% with batch statistics). Recomputing the statistics
with the final weights on some training images fixes that; it changes no learned parameter.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor | tuple], *,
                          device: torch.device | str = "cpu", channels_last: bool = False) -> int:
    """Recompute every BatchNorm's running mean/var as the plain average over ``batches`` (inputs, or
    (inputs, targets) pairs) with the model's current weights; returns the number of batches used.

    Only the BatchNorm layers run in train mode (dropout and drop-path stay off, so later layers see the
    activations they see at inference); the model's train/eval mode is restored afterwards.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    was_training = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in norms}
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    used = 0
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, tuple | list) else batch
            x = x.to(device)
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            getattr(model, "forward_raw", model)(x)  # a detector: the network without its post-processing
            used += 1
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        for m, mode in was_training.items():
            m.train(mode)
    return used
