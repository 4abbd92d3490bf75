"""Inverted Residual Mobile Block of EMO (Zhang et al., "Rethinking Mobile Block for Efficient
Attention-based Models", ICCV 2023, arXiv 2301.01146), seed 004 section 34.

x -> BN -> window multi-head attention (queries / keys from a 1x1 conv of width C; values from the
expanding 1x1 conv + act, width exp_ratio * C) -> depthwise 3x3 conv + BN + SiLU with its own skip
(+ optional SE) -> 1x1 projection -> + x (when the shape is kept).

Windows follow the official code: the padded map is read as (win x n1) rows by (win x n2) columns and
each window gathers the pixels i, i + n1, i + 2*n1, ... (a strided grid, so a window spans the whole
map). Padding keys are masked out of the softmax here.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from litevision.layers.conv_norm_act import ConvNormAct
from litevision.layers.drop import DropPath
from litevision.layers.squeeze_excite import SqueezeExcite
from litevision.modules._registry import ModuleCard, register_module


def _window_partition(x: Tensor, win_h: int, win_w: int) -> Tensor:
    """(N, C, win_h*n1, win_w*n2) -> (N*n1*n2, C, win_h, win_w), official EMO (strided) layout."""
    n, c, h, w = x.shape
    n1, n2 = h // win_h, w // win_w
    x = x.reshape(n, c, win_h, n1, win_w, n2).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n * n1 * n2, c, win_h, win_w)


def _window_merge(x: Tensor, n: int, n1: int, n2: int) -> Tensor:
    b, c, win_h, win_w = x.shape
    x = x.reshape(n, n1, n2, c, win_h, win_w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c, win_h * n1, win_w * n2)


@register_module("irmb", ModuleCard(
    paper="Rethinking Mobile Block for Efficient Attention-based Models", venue="ICCV", year=2023,
    category="hybrid", seed_section=34, paper_url="https://arxiv.org/abs/2301.01146",
    constraints="channels divisible by head_dim (default 64) or a single head of width C; "
                "exp_ratio * channels divisible by the head count",
    dynamic_size=False,
    deviations_fixed=(
        "seed asserted channels % 64 == 0 (dim_head=64); channels below or not divisible by head_dim now use "
        "one head of width C",
        "seed let zero-padded pixels take part as keys (inputs not a multiple of the window); they are "
        "masked out of the softmax here",
        "seed depended on timm/einops internals and in-place LayerScale; plain PyTorch here",
    ),
    notes="supports out_channels and stride (stride on the depthwise conv; the outer skip only when the "
          "shape is kept). Window counts are Python numbers: exported graphs are valid at the export size",
    ref_params=26176, ref_macs=110186496,
))
class InvertedResidualMobileBlock(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 exp_ratio: float = 2.0, head_dim: int = 64, window_size: int = 7, dw_kernel_size: int = 3,
                 se_ratio: float = 0.0, attn: bool = True, qkv_bias: bool = False, act_layer: str = "relu",
                 drop_path: float = 0.0) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.out_channels = out_channels
        self.stride = stride
        self.has_skip = channels == out_channels and stride == 1
        mid = int(channels * exp_ratio)
        self.norm = nn.BatchNorm2d(channels)
        self.attn = attn
        self.num_heads = channels // head_dim if channels % head_dim == 0 else 1
        if attn and mid % self.num_heads:
            raise ValueError(f"irmb: expanded width ({mid}) must be divisible by the head count ({self.num_heads})")
        self.head_dim = channels // self.num_heads
        self.scale = self.head_dim ** -0.5
        self.window_size = window_size
        if attn:
            self.qk = nn.Conv2d(channels, 2 * channels, 1, bias=qkv_bias)
        self.v = ConvNormAct(channels, mid, 1, bias=qkv_bias, norm=False, act_layer=act_layer)
        self.conv_local = ConvNormAct(mid, mid, dw_kernel_size, stride, groups=mid, act_layer="silu")
        self.se = SqueezeExcite(mid, rd_ratio=se_ratio, act_layer=act_layer) if se_ratio > 0 else nn.Identity()
        self.proj = nn.Conv2d(mid, out_channels, 1)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _attention(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        win_h = h if self.window_size <= 0 else self.window_size
        win_w = w if self.window_size <= 0 else self.window_size
        pad_b, pad_r = (-h) % win_h, (-w) % win_w
        x = F.pad(x, (0, pad_r, 0, pad_b))
        n1, n2 = x.shape[2] // win_h, x.shape[3] // win_w
        xw = _window_partition(x, win_h, win_w)  # (N*n1*n2, C, win_h, win_w)
        b, m, tokens = xw.shape[0], self.num_heads, win_h * win_w
        q, k = self.qk(xw).reshape(b, 2, m, self.head_dim, tokens).unbind(1)  # each (B, m, d, T)
        attn = (q.transpose(-1, -2) @ k) * self.scale  # (B, m, T, T)
        if pad_b or pad_r:
            valid = _window_partition(F.pad(x.new_ones(1, 1, h, w), (0, pad_r, 0, pad_b)), win_h, win_w)
            valid = valid.repeat(n, 1, 1, 1).reshape(b, 1, 1, tokens)
            attn = attn.masked_fill(valid == 0, float("-inf"))
        v = self.v(xw).reshape(b, m, -1, tokens)  # (B, m, mid/m, T)
        out = (v @ attn.softmax(dim=-1).transpose(-1, -2)).reshape(b, -1, win_h, win_w)
        return _window_merge(out, n, n1, n2)[:, :, :h, :w]

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.norm(x)
        x = self._attention(x) if self.attn else self.v(x)
        local = self.se(self.conv_local(x))
        x = x + local if self.has_skip else local
        x = self.proj(x)
        return shortcut + self.drop_path(x) if self.has_skip else x

