"""Halo attention (Vaswani et al., "Scaling Local Self-Attention for Parameter Efficient Visual Backbones",
CVPR 2021), seed 004 section 23.

The map is cut into non-overlapping b x b query blocks; each block attends to the (b + 2h) x (b + 2h)
window around it (its "halo" of h pixels on each side), with 2-D relative position logits (one learned
table per axis, query offsets measured inside the window) added to q.k. Keys that fall outside the map
(zero padding) are masked out. Defaults b = 8, h = 3 as in HaloNet.

Maps whose sides are not multiples of b are padded at the bottom/right to the next multiple; the
padded pixels are masked as keys and cropped from the output, so any H x W works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


def relative_index(block_size: int, halo_size: int) -> Tensor:
    """(b, b + 2h) index into a (2(b + 2h) - 1)-row table: key position k relative to query q inside the
    window (the query sits at q + h)."""
    win = block_size + 2 * halo_size
    q = torch.arange(block_size)[:, None] + halo_size
    k = torch.arange(win)[None, :]
    return k - q + win - 1


@register_module("halo_attention", ModuleCard(
    paper="Scaling Local Self-Attention for Parameter Efficient Visual Backbones", venue="CVPR", year=2021,
    category="token_mixer", seed_section=23, paper_url="https://arxiv.org/abs/2103.12731",
    constraints="channels divisible by num_heads (4)", ref_params=17312, ref_macs=188661760,
    deviations_fixed=(
        "padding mask has the right sense: padded keys are excluded (the seed's mask is inverted and masks "
        "every real key instead)",
        "any H x W: bottom/right padding to a multiple of the block size, masked and cropped (the seed asserts "
        "divisibility)",
        "relative logits gathered from a registered index buffer (query offset h inside the window), no "
        "einops dependency",
    ),
))
class HaloAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1, block_size: int = 8,
                 halo_size: int = 3, num_heads: int = 4, head_dim: int | None = None) -> None:
        super().__init__()
        check_shape_preserving("halo_attention", channels, out_channels, stride)
        if head_dim is None and channels % num_heads:
            raise ValueError(f"halo_attention: channels ({channels}) must be divisible by num_heads ({num_heads})")
        if block_size < 1 or halo_size < 0:
            raise ValueError("halo_attention: block_size must be >= 1 and halo_size >= 0")
        self.out_channels, self.stride = channels, 1
        self.block_size, self.halo_size, self.num_heads = block_size, halo_size, num_heads
        self.head_dim = head_dim or channels // num_heads
        inner = self.head_dim * num_heads
        self.win_size = block_size + 2 * halo_size
        self.to_q = nn.Linear(channels, inner, bias=False)
        self.to_kv = nn.Linear(channels, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, channels)
        scale = self.head_dim ** -0.5
        self.rel_height = nn.Parameter(torch.randn(2 * self.win_size - 1, self.head_dim) * scale)
        self.rel_width = nn.Parameter(torch.randn(2 * self.win_size - 1, self.head_dim) * scale)
        self.register_buffer("rel_index", relative_index(block_size, halo_size), persistent=False)

    def _relative_logits(self, q: Tensor) -> Tensor:
        """q (B', heads, b*b, d) -> (B', heads, b*b, win*win) logits q . (r_h[dy] + r_w[dx])."""
        bb, heads, _, d = q.shape
        b, win = self.block_size, self.win_size
        q = q.reshape(bb, heads, b, b, d)
        rh = self.rel_height[self.rel_index]  # (b, win, d): query row -> key row
        rw = self.rel_width[self.rel_index]  # (b, win, d): query col -> key col
        logit_h = torch.einsum("nhyxd,ykd->nhyxk", q, rh)  # (B', heads, b, b, win) over key rows
        logit_w = torch.einsum("nhyxd,xkd->nhyxk", q, rw)  # over key columns
        logits = logit_h[..., :, None] + logit_w[..., None, :]  # (B', heads, b, b, win, win)
        return logits.reshape(bb, heads, b * b, win * win)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        b, halo, heads, d = self.block_size, self.halo_size, self.num_heads, self.head_dim
        pad_h, pad_w = (b - h % b) % b, (b - w % b) % b
        xp = F.pad(x, (0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        nh, nw = hp // b, wp // b
        # query blocks: (N, C, Hp, Wp) -> (N*nh*nw, b*b, C)
        q_in = xp.reshape(n, c, nh, b, nw, b).permute(0, 2, 4, 3, 5, 1).reshape(n * nh * nw, b * b, c)
        # key/value windows with the halo: (N, C*win*win, nh*nw) -> (N*nh*nw, win*win, C)
        kv_in = F.unfold(xp, self.win_size, stride=b, padding=halo)
        kv_in = kv_in.reshape(n, c, -1, nh * nw).permute(0, 3, 2, 1).reshape(n * nh * nw, -1, c)
        q = self.to_q(q_in).reshape(-1, b * b, heads, d).transpose(1, 2)
        k, v = self.to_kv(kv_in).reshape(-1, self.win_size ** 2, 2, heads, d).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-1, -2)) * d ** -0.5 + self._relative_logits(q)
        # keys outside the original map (zero padding of unfold, bottom/right padding) are masked
        valid = F.pad(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device), (0, pad_w, 0, pad_h))
        valid = F.unfold(valid, self.win_size, stride=b, padding=halo)  # (1, win*win, nh*nw)
        valid = valid.transpose(1, 2).reshape(1, nh * nw, 1, 1, -1).expand(n, -1, -1, -1, -1)
        valid = valid.reshape(n * nh * nw, 1, 1, -1) > 0.5
        attn = logits.masked_fill(~valid, float("-inf")).softmax(dim=-1)  # every query sees itself
        out = self.to_out((attn @ v).transpose(1, 2).reshape(-1, b * b, heads * d))  # (N*nh*nw, b*b, C)
        out = out.reshape(n, nh, nw, b, b, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, hp, wp)
        return out[:, :, :h, :w]
