"""Super Token Attention of STViT (Huang et al., "Vision Transformer with Super Token Sampling", CVPR 2023,
arXiv 2211.11167), seed 004 section 33.

1. Super-token sampling: the map is cut into an S_h x S_w grid; initial super tokens are the grid-cell
   means. For ``n_iter`` rounds, every pixel computes a softmax affinity to the 9 super tokens around its
   cell (soft k-means restricted to neighbours) and super tokens become affinity-weighted pixel means.
2. Multi-head self-attention among the super tokens (few tokens: global attention is cheap).
3. Token upsampling: every pixel gets the affinity-weighted sum of its 9 neighbouring (refined) super
   tokens.

The 3x3 neighbourhood gather / scatter are convolutions with fixed identity kernels (registered buffers).
Any H x W: the map is zero-padded to whole cells and the padded pixels are excluded from the super-token
sums (their affinities are zeroed), then the output is cropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving, resolve_heads


class _SuperTokenMHSA(nn.Module):
    """Multi-head self-attention on an (N, C, h, w) map of super tokens (1x1 conv projections)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        # (N, 3C, h, w) -> (N, heads, 3 * C/heads, hw) -> q, k, v each (N, heads, C/heads, hw)
        q, k, v = self.qkv(x).reshape(n, self.num_heads, 3 * c // self.num_heads, h * w).chunk(3, dim=2)
        attn = (k.transpose(-1, -2) @ q) * self.scale  # (N, heads, hw_key, hw_query)
        out = v @ attn.softmax(dim=-2)  # (N, heads, C/heads, hw)
        return self.proj(out.reshape(n, c, h, w))


@register_module("stoken_attention", ModuleCard(
    paper="Vision Transformer with Super Token Sampling", venue="CVPR", year=2023, category="token_mixer",
    seed_section=33, paper_url="https://arxiv.org/abs/2211.11167",
    constraints="channels divisible by num_heads (default C // 32 heads)", dynamic_size=False,
    deviations_fixed=(
        "seed does not run (stoken/token name mismatches: token_refine, token_size, token_forward)",
        "seed's fixed unfold/fold identity kernels were nn.Parameters (requires_grad=False); here buffers",
        "padded pixels (H or W not a multiple of the super-token size) no longer count in the super-token "
        "sums; the official code averages their zeros in",
    ),
    notes="affinities are computed without gradient (as the paper's sampling); the final aggregation "
          "and the up-sampling carry gradients. stoken_size=(1, 1) degenerates to plain MHSA over all "
          "pixels, as in the paper's last stages. Cell sizes are Python numbers: exported graphs are valid "
          "at the export size",
    ref_params=16448, ref_macs=7295169,
))
class SuperTokenAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 stoken_size: tuple[int, int] = (8, 8), n_iter: int = 1, num_heads: int | None = None,
                 qkv_bias: bool = False) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("stoken_attention", channels, out_channels, stride)
        self.stride = 1
        if n_iter < 1:
            raise ValueError("stoken_attention: n_iter must be >= 1")
        self.stoken_size = tuple(stoken_size)
        self.n_iter = n_iter
        self.scale = channels ** -0.5
        self.stoken_refine = _SuperTokenMHSA(channels, resolve_heads("stoken_attention", channels, num_heads),
                                             qkv_bias)
        # 9 one-hot 3x3 kernels: conv = gather the 3x3 neighbourhood, transposed conv = scatter it back
        self.register_buffer("neighbour_kernels", torch.eye(9).reshape(9, 1, 3, 3), persistent=False)

    def _unfold(self, x: Tensor) -> Tensor:
        """(N, C, h, w) -> (N, h*w, C, 9): each cell's 3x3 neighbourhood (zeros outside)."""
        n, c, h, w = x.shape
        x = F.conv2d(x.reshape(n * c, 1, h, w), self.neighbour_kernels.to(x.dtype), padding=1)
        return x.reshape(n, c, 9, h * w).permute(0, 3, 1, 2)

    def _fold(self, x: Tensor) -> Tensor:
        """(B, 9, h, w) -> (B, 1, h, w): sum each cell's contributions back onto its neighbours."""
        return F.conv_transpose2d(x, self.neighbour_kernels.to(x.dtype), padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.stoken_size == (1, 1):
            return self.stoken_refine(x)
        n, c, h0, w0 = x.shape
        sh, sw = self.stoken_size
        pad_b, pad_r = (-h0) % sh, (-w0) % sw
        x = F.pad(x, (0, pad_r, 0, pad_b))
        hh, ww = x.shape[2] // sh, x.shape[3] // sw
        # (N, C, hh*sh, ww*sw) -> (N, hh*ww, sh*sw, C): the pixels of each cell
        pixels = x.reshape(n, c, hh, sh, ww, sw).permute(0, 2, 4, 3, 5, 1).reshape(n, hh * ww, sh * sw, c)
        valid = None
        if pad_b or pad_r:
            ones = F.pad(x.new_ones(1, 1, h0, w0), (0, pad_r, 0, pad_b))
            valid = ones.reshape(1, hh, sh, ww, sw).permute(0, 1, 3, 2, 4).reshape(1, hh * ww, sh * sw, 1)
            stokens = F.avg_pool2d(x, (sh, sw)) / F.avg_pool2d(ones, (sh, sw))  # mean of the real pixels
        else:
            stokens = F.avg_pool2d(x, (sh, sw))  # (N, C, hh, ww): initial super tokens

        with torch.no_grad():
            for i in range(self.n_iter):
                neigh = self._unfold(stokens)  # (N, hh*ww, C, 9)
                affinity = (pixels @ neigh * self.scale).softmax(dim=-1)  # (N, hh*ww, sh*sw, 9)
                if valid is not None:
                    affinity = affinity * valid
                norm = self._fold(affinity.sum(dim=2).transpose(1, 2).reshape(n, 9, hh, ww))  # (N, 1, hh, ww)
                if i < self.n_iter - 1:
                    stokens = self._aggregate(pixels, affinity, n, c, hh, ww) / (norm + 1e-12)
        stokens = self._aggregate(pixels, affinity, n, c, hh, ww) / (norm + 1e-12)
        stokens = self.stoken_refine(stokens)

        neigh = self._unfold(stokens)  # (N, hh*ww, C, 9)
        out = neigh @ affinity.transpose(-1, -2)  # (N, hh*ww, C, sh*sw)
        out = out.reshape(n, hh, ww, c, sh, sw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, hh * sh, ww * sw)
        return out[:, :, :h0, :w0]

    def _aggregate(self, pixels: Tensor, affinity: Tensor, n: int, c: int, hh: int, ww: int) -> Tensor:
        """Affinity-weighted pixel sums scattered onto the 9 neighbouring super tokens: (N, C, hh, ww)."""
        sums = pixels.transpose(-1, -2) @ affinity  # (N, hh*ww, C, 9)
        sums = sums.permute(0, 2, 3, 1).reshape(n * c, 9, hh, ww)
        return self._fold(sums).reshape(n, c, hh, ww)
