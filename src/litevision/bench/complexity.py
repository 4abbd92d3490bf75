"""Parameter and MAC counting.

Convention: MACs (multiply-accumulates) = FLOPs counted by ``torch.utils.flop_counter`` / 2 for one image.
Counted: convolutions (dense, grouped and depthwise: ``2 * out_elems * in_chs/groups * kh * kw``),
matrix products (``mm``/``addmm``/``bmm``/``baddbmm``, linear layers) and attention through
``F.scaled_dot_product_attention`` (QK^T and AV products). Element-wise operations (BatchNorm,
activations, residual additions, pooling, softmax) are not counted, as in the papers' tables (fvcore,
thop and torchvision's metadata use the same convention).

Special operators register their own formula with :func:`register_macs_formula` (:mod:`litevision.utils.macs`),
keyed by the operator's ``torch.ops`` packet (e.g. LSNet's SKA custom op); no monkey-patching is involved.

The CPU fused attention kernel (``aten._scaled_dot_product_flash_attention_for_cpu``) has no formula
in torch 2.14.1, so FlopCounterMode would count it as zero; we register one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from litevision.utils.macs import macs_formulas, register_macs_formula


def _sdpa_macs(query: torch.Size, key: torch.Size, value: torch.Size, *args: Any, out_shape: Any = None,
               **kwargs: Any) -> int:
    """QK^T and softmax(QK^T) V products of scaled dot-product attention: (..., L, E) x (..., S, E)."""
    *batch, q_len, e = query
    s_len, ev = key[-2], value[-1]
    n = 1
    for b in batch:
        n *= b
    return n * q_len * s_len * (e + ev)


register_macs_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, _sdpa_macs)


def _flop_mapping() -> dict[Any, Callable[..., int]]:
    def to_flops(fn: Callable[..., int]) -> Callable[..., int]:
        def wrapped(*args: Any, **kwargs: Any) -> int:
            return 2 * int(fn(*args, **kwargs))

        return wrapped

    return {op: to_flops(fn) for op, fn in macs_formulas().items()}


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int
    input_size: tuple[int, ...]
    by_operator: dict[str, int]

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def macs_g(self) -> float:
        return self.macs / 1e9


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_complexity(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224)) -> Complexity:
    """Parameters and MACs of ``model`` for one input of ``input_size`` (C, H, W), evaluated in eval mode.

    ``input_size`` may also be a full shape with a leading batch dimension; MACs are then for that batch.
    The model's train/eval mode is restored afterwards. A detector is counted without its post-processing
    (``forward_raw``: the network, as detection papers count it).
    """
    shape = tuple(input_size)
    if len(shape) == 3 or (len(shape) == 4 and _is_video_like(model)):
        shape = (1, *shape)
    was_training = model.training
    model.eval()
    try:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        x = torch.zeros(shape, device=device, dtype=dtype)
        with FlopCounterMode(display=False, custom_mapping=_flop_mapping()) as counter:
            getattr(model, "forward_raw", model)(x)
        flops = counter.get_total_flops()
        by_op = {str(k): int(v) // 2 for k, v in counter.get_flop_counts().get("Global", {}).items()}
    finally:
        model.train(was_training)
    return Complexity(params=count_params(model), macs=int(flops) // 2, input_size=shape, by_operator=by_op)


def _is_video_like(model: nn.Module) -> bool:
    """Models consuming 5-D inputs (HybridSN: (B, 1, bands, H, W)) get their batch dim added here."""
    return bool(getattr(model, "input_ndim", 4) == 5)
