"""Attention Free Transformer layers (Zhai et al., "An Attention Free Transformer", arXiv 2105.14103),
seed 004 section 35: AFT-full and AFT-simple, two registered modules.

For tokens X (T positions): Q, K, V = X W_q, X W_k, X W_v and, per channel,

    AFT-full:   Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' / sum_t' exp(K_t' + w_tt')
    AFT-simple: Y_t = sigmoid(Q_t) * sum_t' softmax_t'(K)_t' V_t'         (w = 0: global, O(T d))

AFT-full is computed as exp(w) @ (exp(K) * V) / (exp(w) @ exp(K)) (two T x T by T x C products, no
per-channel T x T tensor), with the maxima of K and of each row of w subtracted first (they cancel in the
ratio) so it cannot overflow.

Any H x W for AFT-full: the pair-wise biases w (T x T in the paper, T fixed) are parameterised as
w = U V^T with U, V position embeddings of rank ``pos_dim`` on a reference ``pos_size`` grid, resized
bilinearly to the input grid (as ViT position embeddings are). With pos_dim >= T_ref (default 64 >= 49)
this can represent any T_ref x T_ref bias matrix, so at the reference size it is the paper's AFT-full.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._adapters import adapt
from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving


class AFTFull(nn.Module):
    """Tokens (N, H*W, C) plus the grid size -> (N, H*W, C)."""

    needs_size = True

    def __init__(self, dim: int, pos_size: tuple[int, int] = (7, 7), pos_dim: int = 64) -> None:
        super().__init__()
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.pos_size = tuple(pos_size)
        self.pos_u = nn.Parameter(torch.randn(1, pos_dim, *self.pos_size) * 0.02)
        self.pos_v = nn.Parameter(torch.randn(1, pos_dim, *self.pos_size) * 0.02)

    def position_biases(self, size: tuple[int, int]) -> Tensor:
        """w (H*W, H*W) for an H x W grid."""
        u, v = self.pos_u, self.pos_v
        if tuple(size) != self.pos_size or torch.jit.is_tracing():  # traced graphs keep the resizing
            u = F.interpolate(u, size=size, mode="bilinear", align_corners=False)
            v = F.interpolate(v, size=size, mode="bilinear", align_corners=False)
        return u.flatten(2)[0].transpose(0, 1) @ v.flatten(2)[0]  # (T, d) @ (d, T)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        w = self.position_biases(size)
        exp_w = torch.exp(w - w.amax(dim=-1, keepdim=True))  # (T, T), each row's max is 1
        exp_k = torch.exp(k - k.amax(dim=1, keepdim=True))  # (N, T, C), each channel's max is 1
        num = exp_w @ (exp_k * v)
        den = (exp_w @ exp_k).clamp_min(torch.finfo(x.dtype).tiny)
        return torch.sigmoid(q) * num / den


class AFTSimple(nn.Module):
    """Tokens (N, L, C) -> (N, L, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        context = (k.softmax(dim=1) * v).sum(dim=1, keepdim=True)  # (N, 1, C)
        return torch.sigmoid(q) * context


_PAPER = dict(paper="An Attention Free Transformer", venue="arXiv", year=2021, category="token_mixer",
              seed_section=35, paper_url="https://arxiv.org/abs/2105.14103", adapter="token")


@register_module("aft_full", ModuleCard(
    **_PAPER,
    constraints="none (biases resized from the pos_size reference grid)",
    deviations_fixed=(
        "seed fixed the sequence length n (=49) and broadcast an (n, 1, n, 1) bias against an n x batch "
        "view (memory n^2 * batch * C); here exp(w) @ (exp(K) * V) with overflow-safe maxima",
        "seed's T x T biases only work for one token count; factorised U V^T position embeddings resized "
        "to the input grid make any H x W work (exact AFT-full capacity at the reference size)",
        "seed initialised all biases to 1 (a constant that cancels); here small random U, V (w ~ 0 at "
        "start, i.e. AFT-simple behaviour)",
    ),
    notes="cost O(T^2 C) like AFT-full in the paper (T = H*W)",
    ref_params=18752, ref_macs=1926758400,
))
def aft_full(channels: int, *, out_channels: int | None = None, stride: int = 1,
             pos_size: tuple[int, int] = (7, 7), pos_dim: int = 64) -> nn.Module:
    check_shape_preserving("aft_full", channels, out_channels, stride)
    return adapt("token", AFTFull(channels, pos_size, pos_dim), channels)


@register_module("aft_simple", ModuleCard(
    **_PAPER,
    deviations_fixed=(
        "seed's 'simple' mode kept a plain zeros tensor as position biases (not a buffer: wrong device, "
        "fixed length); AFT-simple has no biases at all, it is a softmax over K along the tokens",
    ),
    ref_params=12480, ref_macs=38535168,
))
def aft_simple(channels: int, *, out_channels: int | None = None, stride: int = 1) -> nn.Module:
    check_shape_preserving("aft_simple", channels, out_channels, stride)
    return adapt("token", AFTSimple(channels), channels)
