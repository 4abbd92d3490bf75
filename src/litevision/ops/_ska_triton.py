"""Triton kernels for SKA on CUDA (optional; imported only when a CUDA tensor reaches the operator).

Same function as :func:`litevision.ops.ska.ska_reference`. One program handles ``BLOCK`` pixels of one
(sample, channel) plane, so loads along a row are contiguous; accumulation is in float32 (float64 for
float64 inputs). ``TRITON_INTERPRET=1`` runs these kernels on CPU tensors, which is how the tests check them on
machines without a GPU.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

_BLOCK = 256


@functools.cache
def available() -> bool:
    """Triton is importable and not disabled with ``LITEVISION_SKA_TRITON=0``."""
    return triton is not None and os.environ.get("LITEVISION_SKA_TRITON", "1") != "0"


if triton is not None:

    @triton.jit
    def _ska_fwd_kernel(x_ptr, w_ptr, out_ptr, C, G, H, W, KS: tl.constexpr, BLOCK: tl.constexpr,
                        ACC: tl.constexpr):
        plane = tl.program_id(0)  # b * C + c
        b, c = plane // C, plane % C
        hw = H * W
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < hw
        i, j = offs // W, offs % W
        w_base = w_ptr + (b * G + c % G) * (KS * KS) * hw
        acc = tl.zeros((BLOCK,), dtype=ACC)
        for k in tl.static_range(KS * KS):
            ii = i + (k // KS - KS // 2)
            jj = j + (k % KS - KS // 2)
            valid = mask & (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
            xv = tl.load(x_ptr + plane * hw + ii * W + jj, mask=valid, other=0.0).to(ACC)
            wv = tl.load(w_base + k * hw + offs, mask=mask, other=0.0).to(ACC)
            acc += xv * wv
        tl.store(out_ptr + plane * hw + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _ska_bwd_x_kernel(go_ptr, w_ptr, gx_ptr, C, G, H, W, KS: tl.constexpr, BLOCK: tl.constexpr,
                        ACC: tl.constexpr):
        plane = tl.program_id(0)
        b, c = plane // C, plane % C
        hw = H * W
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < hw
        i, j = offs // W, offs % W
        w_base = w_ptr + (b * G + c % G) * (KS * KS) * hw
        acc = tl.zeros((BLOCK,), dtype=ACC)
        for k in tl.static_range(KS * KS):
            # input pixel p feeds output pixel p - offset_k through tap k
            oi = i - (k // KS - KS // 2)
            oj = j - (k % KS - KS // 2)
            valid = mask & (oi >= 0) & (oi < H) & (oj >= 0) & (oj < W)
            gv = tl.load(go_ptr + plane * hw + oi * W + oj, mask=valid, other=0.0).to(ACC)
            wv = tl.load(w_base + k * hw + oi * W + oj, mask=valid, other=0.0).to(ACC)
            acc += gv * wv
        tl.store(gx_ptr + plane * hw + offs, acc.to(gx_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _ska_bwd_w_kernel(go_ptr, x_ptr, gw_ptr, C, G, H, W, KS: tl.constexpr, BLOCK: tl.constexpr,
                        ACC: tl.constexpr):
        row = tl.program_id(0)  # b * G + g
        b, g = row // G, row % G
        hw = H * W
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < hw
        i, j = offs // W, offs % W
        for k in tl.static_range(KS * KS):
            ii = i + (k // KS - KS // 2)
            jj = j + (k % KS - KS // 2)
            valid = mask & (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
            acc = tl.zeros((BLOCK,), dtype=ACC)
            for r in range(0, C // G):  # the channels c = r*G + g that share weight row g
                plane = b * C + r * G + g
                xv = tl.load(x_ptr + plane * hw + ii * W + jj, mask=valid, other=0.0).to(ACC)
                gv = tl.load(go_ptr + plane * hw + offs, mask=mask, other=0.0).to(ACC)
                acc += xv * gv
            tl.store(gw_ptr + (row * (KS * KS) + k) * hw + offs, acc.to(gw_ptr.dtype.element_ty), mask=mask)


def _acc(x: Tensor) -> object:
    return tl.float64 if x.dtype == torch.float64 else tl.float32


def _launch_shape(planes: int, hw: int) -> tuple[int, int]:
    return planes, triton.cdiv(hw, _BLOCK)


def forward(x: Tensor, w: Tensor) -> Tensor:
    """SKA forward for contiguous ``x`` (B, C, H, W) and ``w`` (B, G, k*k, H, W)."""
    b, c, h, wd = x.shape
    g, ks = w.shape[1], int(round(w.shape[2] ** 0.5))
    out = torch.empty_like(x)
    grid = _launch_shape(b * c, h * wd)
    _ska_fwd_kernel[grid](x, w, out, c, g, h, wd, KS=ks, BLOCK=_BLOCK, ACC=_acc(x))
    return out


def backward(grad: Tensor, x: Tensor, w: Tensor, need_x: bool, need_w: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients for ``x`` and ``w`` (contiguous inputs); ``None`` for those not needed."""
    b, c, h, wd = x.shape
    g, ks = w.shape[1], int(round(w.shape[2] ** 0.5))
    gx = gw = None
    if need_x:
        gx = torch.empty_like(x)
        grid = _launch_shape(b * c, h * wd)
        _ska_bwd_x_kernel[grid](grad, w, gx, c, g, h, wd, KS=ks, BLOCK=_BLOCK, ACC=_acc(x))
    if need_w:
        gw = torch.empty_like(w)
        grid = _launch_shape(b * g, h * wd)
        _ska_bwd_w_kernel[grid](grad, x, gw, c, g, h, wd, KS=ks, BLOCK=_BLOCK, ACC=_acc(x))
    return gx, gw
