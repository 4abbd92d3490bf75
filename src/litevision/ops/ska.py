"""Small-Kernel Aggregation (SKA), the dynamic per-pixel k×k aggregation of LSNet's LS convolution.

Definition (Wang et al., "LSNet: See Large, Focus Small", CVPR 2025; official Triton kernel
``THU-MIG/lsnet/model/ska.py``)::

    out[b, c, i, j] = sum_{u, v} x_pad[b, c, i + u, j + v] * w[b, c mod G, u * k + v, i, j]

with ``x`` of shape (B, C, H, W), ``w`` of shape (B, G, k*k, H, W), zero padding ``k // 2`` and
``G = C / 8`` weight rows in LSNet. Channel ``c`` uses weight row ``c mod G`` (interleaved): viewing
``x`` as (B, C/G, G, H, W), the weights broadcast over the second axis, so no gather is needed.

Implementations, all computing the same function:

* :func:`ska_reference` — the definition written with ``unfold`` and an explicit channel gather: the
  ground truth of the tests, slow (it materialises k*k copies of ``x`` and ``C/G`` copies of ``w``).
* :func:`ska_decomposed` — out-of-place shift-and-accumulate over the k*k taps with standard operators
  only (pad, slice, mul, add). Used for ONNX / TorchScript tracing / ``torch.export`` / ``torch.compile``
  so exported graphs contain no custom operator (inductor fuses it into one kernel).
* the ``litevision::ska`` custom operator (:func:`ska` dispatches to it in eager mode): in-place
  shift-and-accumulate on border-cropped slices (no padded copy, one fused multiply-add per tap) with a
  hand-written backward for ``x`` and ``w``; on CUDA the optional Triton kernels of
  :mod:`litevision.ops._ska_triton` when Triton is installed. Being one operator, ``FlopCounterMode``
  sees it as such and :mod:`litevision.bench.complexity` counts it with the formula registered below.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.utils.macs import register_macs_formula

__all__ = ["SKA", "ska", "ska_decomposed", "ska_macs", "ska_reference", "ska_shift", "ska_weight_norm"]


def _check(x: Tensor, w: Tensor) -> tuple[int, int, int]:
    """Validate shapes; return (weight rows G, kernel size k, padding).

    While tracing, shapes are read as plain ints without the checks (they ran in eager mode already and
    would only add "converting a tensor to a Python boolean" warnings to the trace).
    """
    if x.dim() != 4 or w.dim() != 5:
        raise ValueError(f"ska expects x (B, C, H, W) and w (B, G, k*k, H, W), got {tuple(x.shape)} and "
                         f"{tuple(w.shape)}")
    if torch.jit.is_tracing():
        with warnings.catch_warnings():  # G and k are architecture constants, fine to bake into the trace
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            groups, ks = int(w.shape[1]), math.isqrt(int(w.shape[2]))
        return groups, ks, ks // 2
    groups, taps = w.shape[1], w.shape[2]
    ks = math.isqrt(taps)
    b, c, h, wd = x.shape
    if ks * ks != taps or ks % 2 == 0:
        raise ValueError(f"ska: w.shape[2] must be k*k for an odd k, got {taps}")
    if w.shape[0] != b or tuple(w.shape[3:]) != (h, wd):
        raise ValueError(f"ska: w {tuple(w.shape)} does not match x {tuple(x.shape)}")
    if c % groups:
        raise ValueError(f"ska: {c} channels are not divisible by {groups} weight rows")
    return groups, ks, ks // 2


def ska_reference(x: Tensor, w: Tensor) -> Tensor:
    """The definition, literally: unfold ``x`` into its k*k neighbourhoods, gather row ``c mod G`` of ``w``."""
    groups, ks, pad = _check(x, w)
    b, c, h, wd = x.shape
    patches = F.unfold(x, ks, padding=pad).view(b, c, ks * ks, h, wd)  # (B, C, k*k, H, W)
    rows = torch.arange(c, device=x.device) % groups
    return (patches * w[:, rows]).sum(2)


def ska_decomposed(x: Tensor, w: Tensor) -> Tensor:
    """Shift-and-accumulate with standard out-of-place operators only (the export / compile path).

    Slices use constant starts and ends relative to the padded tensor, so traced graphs stay valid for
    any input size.
    """
    groups, ks, pad = _check(x, w)
    xp = F.pad(x, (pad, pad, pad, pad)).unflatten(1, (-1, groups))  # (B, C/G, G, H+2p, W+2p)
    out = None
    for k in range(ks * ks):
        u, v = divmod(k, ks)
        end_u, end_v = u - 2 * pad or None, v - 2 * pad or None
        term = xp[..., u:end_u, v:end_v] * w[:, None, :, k]
        out = term if out is None else out + term
    return out.flatten(1, 2)


def _taps(h: int, wd: int, ks: int) -> Iterator[tuple[int, tuple[slice, slice], tuple[slice, slice]]]:
    """For each tap k: the output window that tap reaches and the matching (shifted) input window."""
    pad = ks // 2
    for k in range(ks * ks):
        du, dv = k // ks - pad, k % ks - pad
        out_win = (slice(max(0, -du), h - max(0, du)), slice(max(0, -dv), wd - max(0, dv)))
        in_win = (slice(max(0, du), h - max(0, -du)), slice(max(0, dv), wd - max(0, -dv)))
        yield k, out_win, in_win


def ska_shift(x: Tensor, w: Tensor) -> Tensor:
    """Fast eager forward: centre tap as one product, the other taps as in-place ``addcmul_`` on cropped
    windows (zero padding never materialised). Not differentiable by autograd (in-place on views); the
    custom operator supplies the backward."""
    groups, ks, _ = _check(x, w)
    b, c, h, wd = x.shape
    x5 = x.unflatten(1, (c // groups, groups))  # (B, C/G, G, H, W)
    w6 = w.unsqueeze(1)  # (B, 1, G, k*k, H, W): broadcasts over the C/G channel blocks
    centre = (ks * ks) // 2
    out = x5 * w6[:, :, :, centre]
    for k, (oi, oj), (ii, ij) in _taps(h, wd, ks):
        if k != centre:
            out[..., oi, oj].addcmul_(x5[..., ii, ij], w6[:, :, :, k, oi, oj])
    return out.reshape(b, c, h, wd)


def _ska_backward_shift(grad: Tensor, x: Tensor, w: Tensor, need_x: bool, need_w: bool
                        ) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of :func:`ska_shift`: ``gx`` scatters each tap back (transposed shifts); ``gw`` is, per
    tap, the product of shifted ``x`` and ``grad`` summed over the C/G channel blocks sharing a row."""
    groups, ks, _ = _check(x, w)
    b, c, h, wd = x.shape
    x5 = x.unflatten(1, (c // groups, groups))
    g5 = grad.unflatten(1, (c // groups, groups))
    w6 = w.unsqueeze(1)
    centre = (ks * ks) // 2
    gx = g5 * w6[:, :, :, centre] if need_x else None
    gw = torch.zeros_like(w) if need_w else None
    for k, (oi, oj), (ii, ij) in _taps(h, wd, ks):
        if gx is not None and k != centre:
            gx[..., ii, ij].addcmul_(g5[..., oi, oj], w6[:, :, :, k, oi, oj])
        if gw is not None:
            gw[:, :, k, oi, oj] = (x5[..., ii, ij] * g5[..., oi, oj]).sum(1)
    return (gx.reshape(b, c, h, wd) if gx is not None else None), gw


def _triton_available(x: Tensor, w: Tensor) -> bool:
    # the kernels index with 32-bit integers
    if not x.is_cuda or max(x.numel(), w.numel()) >= 2**31:
        return False
    from litevision.ops import _ska_triton

    return _ska_triton.available()


@torch.library.custom_op("litevision::ska", mutates_args=())
def _ska_op(x: Tensor, w: Tensor) -> Tensor:
    x, w = x.contiguous(), w.contiguous()
    if _triton_available(x, w):
        from litevision.ops import _ska_triton

        return _ska_triton.forward(x, w)
    return ska_shift(x, w)


@_ska_op.register_fake
def _(x: Tensor, w: Tensor) -> Tensor:
    _check(x, w)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("litevision::ska_backward", mutates_args=())
def _ska_backward_op(grad: Tensor, x: Tensor, w: Tensor, need_x: bool, need_w: bool) -> tuple[Tensor, Tensor]:
    grad, x, w = grad.contiguous(), x.contiguous(), w.contiguous()
    if _triton_available(x, w):
        from litevision.ops import _ska_triton

        gx, gw = _ska_triton.backward(grad, x, w, need_x, need_w)
    else:
        gx, gw = _ska_backward_shift(grad, x, w, need_x, need_w)
    # custom ops cannot return None: unused gradients come back as empty tensors
    return (gx if gx is not None else x.new_empty(0)), (gw if gw is not None else w.new_empty(0))


@_ska_backward_op.register_fake
def _(grad: Tensor, x: Tensor, w: Tensor, need_x: bool, need_w: bool) -> tuple[Tensor, Tensor]:
    gx = torch.empty_like(x, memory_format=torch.contiguous_format) if need_x else x.new_empty(0)
    gw = torch.empty_like(w, memory_format=torch.contiguous_format) if need_w else w.new_empty(0)
    return gx, gw


def _setup_context(ctx, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:  # noqa: ANN001
    x, w = inputs
    ctx.save_for_backward(x, w)


def _backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # noqa: ANN001
    x, w = ctx.saved_tensors
    need_x, need_w = ctx.needs_input_grad
    gx, gw = _ska_backward_op(grad, x, w, need_x, need_w)
    return (gx if need_x else None), (gw if need_w else None)


_ska_op.register_autograd(_backward, setup_context=_setup_context)


def ska_macs(x_shape: torch.Size, w_shape: torch.Size, *args: object, out_shape: object = None,
             **kwargs: object) -> int:
    """One multiply-accumulate per output element and tap: B * C * H * W * k*k."""
    return math.prod(x_shape) * w_shape[2]


def _ska_backward_macs(grad_shape: torch.Size, x_shape: torch.Size, w_shape: torch.Size, need_x: bool,
                       need_w: bool, *args: object, out_shape: object = None, **kwargs: object) -> int:
    return (int(need_x) + int(need_w)) * ska_macs(x_shape, w_shape)


@torch.library.custom_op("litevision::ska_weight_norm", mutates_args=())
def _weight_norm_op(w: Tensor, gamma: Tensor, beta: Tensor, num_groups: int, eps: float
                    ) -> tuple[Tensor, Tensor, Tensor]:
    b, c = w.shape[:2]
    w = w.contiguous()
    return torch.ops.aten.native_group_norm(w, gamma, beta, b, c, w[0, 0].numel(), num_groups, eps)


@_weight_norm_op.register_fake
def _(w: Tensor, gamma: Tensor, beta: Tensor, num_groups: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    stats = w.new_empty(w.shape[0], num_groups)
    return torch.empty_like(w, memory_format=torch.contiguous_format), stats, torch.empty_like(stats)


def _weight_norm_setup(ctx, inputs: tuple, output: tuple[Tensor, Tensor, Tensor]) -> None:  # noqa: ANN001
    w, gamma, _, num_groups, _ = inputs
    _, mean, rstd = output
    ctx.save_for_backward(w, gamma, mean, rstd)
    ctx.num_groups = num_groups


def _weight_norm_backward(ctx, grad: Tensor, _grad_mean: Tensor, _grad_rstd: Tensor) -> tuple:  # noqa: ANN001
    w, gamma, mean, rstd = ctx.saved_tensors
    need_w, need_gamma, need_beta = ctx.needs_input_grad[:3]
    b, c = w.shape[:2]
    gw, ggamma, gbeta = torch.ops.aten.native_group_norm_backward(
        grad.contiguous(), w.contiguous(), mean, rstd, gamma, b, c, w[0, 0].numel(), ctx.num_groups,
        [need_w, need_gamma, need_beta])
    return gw, ggamma, gbeta, None, None


_weight_norm_op.register_autograd(_weight_norm_backward, setup_context=_weight_norm_setup)


def ska_weight_norm(w: Tensor, norm: nn.GroupNorm) -> Tensor:
    """``norm(w)`` for the GroupNorm that produces SKA's weights in LKP, as one counted operator.

    Identical to ``F.group_norm``; in eager mode it runs as ``litevision::ska_weight_norm`` so
    :func:`litevision.bench.complexity.count_complexity` includes this normalisation (it cannot be folded
    into a convolution at deploy time, unlike BatchNorm) without a global rule for every GroupNorm.
    """
    if _use_decomposition() or not norm.affine:
        return F.group_norm(w, norm.num_groups, norm.weight, norm.bias, norm.eps)
    return torch.ops.litevision.ska_weight_norm(w, norm.weight, norm.bias, norm.num_groups, norm.eps)[0]


def _weight_norm_macs(w_shape: torch.Size, *args: object, out_shape: object = None, **kwargs: object) -> int:
    """fvcore's count for an affine normalisation (the counter behind LSNet's published FLOPs): 5 per
    element (statistics, normalisation, scale and shift)."""
    return 5 * math.prod(w_shape)


def _register_formulas() -> None:
    register_macs_formula(torch.ops.litevision.ska, ska_macs)
    register_macs_formula(torch.ops.litevision.ska_backward, _ska_backward_macs)
    register_macs_formula(torch.ops.litevision.ska_weight_norm, _weight_norm_macs)


_register_formulas()


def _use_decomposition() -> bool:
    """Graph capture (ONNX export, TorchScript tracing, torch.export / torch.compile) gets standard ops."""
    return (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
            or torch.compiler.is_exporting())


def ska(x: Tensor, w: Tensor) -> Tensor:
    """SKA dispatcher: the ``litevision::ska`` operator in eager mode, :func:`ska_decomposed` when a graph
    is being captured (ONNX, ``torch.jit.trace``, ``torch.export``, ``torch.compile``)."""
    if _use_decomposition():
        return ska_decomposed(x, w)
    return torch.ops.litevision.ska(x, w)


class SKA(nn.Module):
    """Module wrapper (no parameters): ``forward(x, w)`` with ``w`` of shape (B, G, k*k, H, W)."""

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return ska(x, w)
