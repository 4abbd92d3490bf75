"""Bi-Level Routing Attention of BiFormer (Zhu et al., CVPR 2023, arXiv 2303.08810), seed 004 section 32.

1. q, k, v from a 1x1 conv; the map is cut into an n_win x n_win grid of regions.
2. Region-to-region routing: region-averaged q and k give a region affinity matrix; each query region
   keeps its top-k key regions (hard, non-differentiable routing as in the paper's default).
3. Token-to-token attention: every query token attends to all tokens of its k routed regions
   (multi-head softmax attention over the gathered keys / values).
4. Local context enhancement: + depthwise conv(v); then a 1x1 output projection.

Any H x W: the region size is ceil(H / n_win) (fewer regions when H < n_win) and the map is zero-padded
to whole regions; region pooling ignores the padding and padded keys are masked out of the softmax, so
padding never changes the result for real pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving, resolve_heads


def _regions(size: int, n_win: int) -> tuple[int, int]:
    """(region length, number of regions) along one axis: no region is made of padding only."""
    region = math.ceil(size / min(n_win, size))
    return region, math.ceil(size / region)


def _to_regions(x: Tensor, heads: int, rh: int, rw: int) -> Tensor:
    """(N, C, Rh*rh, Rw*rw) -> (N, heads, Rh*Rw, rh*rw, C/heads)."""
    n, c, hp, wp = x.shape
    x = x.reshape(n, heads, c // heads, hp // rh, rh, wp // rw, rw)
    return x.permute(0, 1, 3, 5, 4, 6, 2).reshape(n, heads, (hp // rh) * (wp // rw), rh * rw, c // heads)


@register_module("biformer_attention", ModuleCard(
    paper="BiFormer: Vision Transformer with Bi-Level Routing Attention", venue="CVPR", year=2023,
    category="token_mixer", seed_section=32, paper_url="https://arxiv.org/abs/2303.08810",
    constraints="channels divisible by num_heads (default C // 32 heads)", dynamic_size=False,
    deviations_fixed=(
        "seed does not run (a 'KV Gather' typo, einops dependency); rewritten in plain PyTorch (NCHW)",
        "seed's NCHW variant needed H, W divisible by n_win (auto_pad=False); here any size: the region "
        "grid adapts, region pooling ignores padding and padded keys are masked out of the softmax "
        "(the official auto-pad lets zero-padded keys take part)",
        "local context enhancement uses the paper's 5x5 depthwise conv (seed default 3x3)",
    ),
    notes="attention scale is dim^-0.5 over the full width, as the official code ('consistent with old "
          "models'); region sizes are Python numbers, so an exported graph is valid at its export size",
    ref_params=18304, ref_macs=159311936,
))
class BiLevelRoutingAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 num_heads: int | None = None, n_win: int = 7, topk: int = 4, side_dwconv: int = 5,
                 qk_scale: float | None = None) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("biformer_attention", channels, out_channels, stride)
        self.stride = 1
        if n_win < 1 or topk < 1:
            raise ValueError("biformer_attention: n_win and topk must be >= 1")
        self.num_heads = resolve_heads("biformer_attention", channels, num_heads)
        self.n_win = n_win
        self.topk = topk
        self.scale = qk_scale or channels ** -0.5
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.lepe = nn.Conv2d(channels, channels, side_dwconv, padding=side_dwconv // 2, groups=channels)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        (rh, nh), (rw, nw) = _regions(h, self.n_win), _regions(w, self.n_win)
        q, k, v = self.qkv(x).chunk(3, dim=1)

        # region-level routing graph (no gradient through the routing, as in the paper's default)
        pool = dict(kernel_size=(rh, rw), stride=(rh, rw), ceil_mode=True, count_include_pad=False)
        q_r = F.avg_pool2d(q.detach(), **pool).flatten(2).transpose(1, 2)  # (N, R, C)
        k_r = F.avg_pool2d(k.detach(), **pool).flatten(2)  # (N, C, R)
        topk = min(self.topk, nh * nw)
        idx = torch.topk(q_r @ k_r, k=topk, dim=-1).indices  # (N, R, topk)

        pad = (0, nw * rw - w, 0, nh * rh - h)
        qs, ks, vs = (_to_regions(F.pad(t, pad), self.num_heads, rh, rw) for t in (q, k, v))
        heads, regions, r2, d = ks.shape[1:]
        gather_idx = idx.view(n, 1, regions, topk, 1, 1).expand(-1, heads, -1, -1, r2, d)

        def gather(t: Tensor) -> Tensor:  # (N, m, R, r2, d) -> (N, m, R, topk * r2, d)
            t = t.unsqueeze(2).expand(-1, -1, regions, -1, -1, -1)  # (N, m, R_q, R_kv, r2, d)
            return torch.gather(t, 3, gather_idx).flatten(3, 4)

        attn = (qs * self.scale) @ gather(ks).transpose(-1, -2)  # (N, m, R, r2, topk*r2)
        if pad[1] or pad[3]:
            valid = _to_regions(F.pad(x.new_ones(1, 1, h, w), pad), 1, rh, rw).view(1, regions, r2)
            valid = torch.gather(valid.expand(n, -1, -1), 1, idx.flatten(1).unsqueeze(-1).expand(-1, -1, r2))
            attn = attn.masked_fill(valid.view(n, 1, regions, 1, topk * r2) == 0, float("-inf"))
        out = attn.softmax(dim=-1) @ gather(vs)  # (N, m, R, r2, d)

        # (N, m, nh*nw, rh*rw, d) -> (N, C, H, W)
        out = out.reshape(n, heads, nh, nw, rh, rw, d).permute(0, 1, 6, 2, 4, 3, 5)
        out = out.reshape(n, c, nh * rh, nw * rw)[:, :, :h, :w]
        return self.proj(out + self.lepe(v))
