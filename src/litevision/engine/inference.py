"""Running a model over data in eval mode: the one loop behind validation, ``litevision eval``, comparison
and the hyperspectral class map."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from litevision.data.loader import iterate, make_loader


def amp_context(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def merge_heads(outputs: Any) -> Any:
    """DeiT-style distilled models return (head, head_dist) logits: their mean is the prediction."""
    if isinstance(outputs, tuple | list) and outputs and isinstance(outputs[0], Tensor):
        return sum(outputs) / len(outputs)
    return outputs


@torch.no_grad()
def run_inference(
    model: nn.Module,
    loader: DataLoader,
    consume: Callable[[Any, Any], None],
    *,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    skip_bad: bool = False,
    progress: bool = False,
) -> list[str]:
    """Call ``consume(outputs, targets)`` for every batch of ``loader`` (eval mode, no gradient, the model's
    train/eval mode restored afterwards); returns the unreadable samples skipped (``skip_bad``)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    skipped: list[str] = []
    batches = iterate(loader, skip_bad=skip_bad, on_bad=lambda bad: skipped.extend(b.path for b in bad))
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        batches = tqdm(batches, total=len(loader), desc="eval", leave=False, dynamic_ncols=True)
    try:
        for x, y in batches:
            x = x.to(device, non_blocking=True)
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with amp_context(device, amp_dtype):
                out = model(x)
            consume(merge_heads(out), y)
    finally:
        model.train(was_training)
    return skipped


def predict_logits(model: nn.Module, data: Dataset | DataLoader, *, batch_size: int = 256,
                   device: torch.device | str = "cpu") -> Tensor:
    """(N, C) float32 logits of every sample of ``data`` in order (a dataset of ready tensors or a loader).

    Deterministic: eval mode (dropout off), no gradient, a fixed order; the global RNG is left untouched."""
    loader = data if isinstance(data, DataLoader) else make_loader(data, batch_size=batch_size)
    out: list[Tensor] = []
    with torch.random.fork_rng(devices=[]):
        run_inference(model, loader, lambda logits, _: out.append(logits.float().cpu()), device=device)
    return torch.cat(out) if out else torch.zeros(0, 0)
