"""Weighted Permute-MLP of Vision Permutator (Hou et al., TPAMI 2022, arXiv 2106.12368), seed 004 section 24.

The token mixer of a Permutator block, on channels-last tokens (N, H, W, C):

- channel branch: a C x C linear layer over C;
- height branch: split C into ``seg_dim`` segments of S = C / seg_dim channels, permute so each segment
  sees (H, S) as one vector of length H * S, mix it with an (H*S) x (H*S) linear layer, permute back;
- width branch: the same along W;
- weighted sum: the mean token of (h + w + c) goes through an MLP (C -> C/4 -> 3C); a softmax over the
  three branches gives per-channel branch weights; a final C x C projection.

In the paper the height/width layers are C x C because H = W = seg_dim (the official code and the
seed only run at H = W = seg_dim). Here the (H*S) x (H*S) weight is stored at the reference length
``seg_dim`` and, for another H, resampled along its two position axes (bilinear, like a ViT position
embedding; scaled by seg_dim / H so a row still sums over "one reference length" of inputs). At
H = W = seg_dim this is exactly the paper's layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._adapters import adapt
from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving


class PositionMixLinear(nn.Module):
    """Linear layer over an (L * S) vector laid out as L positions x S channels (index l * S + s),
    defined at the reference length ``ref_len`` and resampled for any other L."""

    def __init__(self, ref_len: int, seg_channels: int, bias: bool) -> None:
        super().__init__()
        self.ref_len = ref_len
        self.seg_channels = seg_channels
        dim = ref_len * seg_channels
        ref = nn.Linear(dim, dim, bias=bias)  # default nn.Linear initialisation, as the paper's layer
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone()) if bias else None

    def resampled(self, length: int) -> tuple[Tensor, Tensor | None]:
        if length == self.ref_len and not torch.jit.is_tracing():  # traced graphs keep the resampling
            return self.weight, self.bias
        r, s = self.ref_len, self.seg_channels
        # (r*S, r*S) -> (S_out, S_in, r_out, r_in): the two position axes become an image to resize
        w = self.weight.view(r, s, r, s).permute(1, 3, 0, 2).reshape(s * s, 1, r, r)
        w = F.interpolate(w, size=(length, length), mode="bilinear", align_corners=False) * (r / length)
        w = w.view(s, s, length, length).permute(2, 0, 3, 1).reshape(length * s, length * s)
        b = None
        if self.bias is not None:
            b = F.interpolate(self.bias.view(1, r, s).transpose(1, 2), size=length, mode="linear",
                              align_corners=False)  # (1, S, r) -> (1, S, L)
            b = b.transpose(1, 2).reshape(length * s)
        return w, b


class _Mlp(nn.Module):
    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WeightedPermuteMLP(nn.Module):
    """(N, H, W, C) -> (N, H, W, C)."""

    def __init__(self, dim: int, seg_dim: int = 8, qkv_bias: bool = False, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % seg_dim:
            raise ValueError(f"vip_mlp: channels ({dim}) must be divisible by seg_dim ({seg_dim})")
        self.seg_dim = seg_dim
        seg_channels = dim // seg_dim
        self.mlp_c = nn.Linear(dim, dim, bias=qkv_bias)
        self.mlp_h = PositionMixLinear(seg_dim, seg_channels, qkv_bias)
        self.mlp_w = PositionMixLinear(seg_dim, seg_channels, qkv_bias)
        self.reweight = _Mlp(dim, dim // 4, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        n, h, w, c = x.shape
        g, s = self.seg_dim, c // self.seg_dim
        c_embed = self.mlp_c(x)

        wh, bh = self.mlp_h.resampled(h)
        # (N, H, W, g, S) -> (N, g, W, H*S): each segment's column is one vector over (H, S)
        h_embed = x.reshape(n, h, w, g, s).permute(0, 3, 2, 1, 4).reshape(n, g, w, h * s)
        h_embed = F.linear(h_embed, wh, bh).reshape(n, g, w, h, s).permute(0, 3, 2, 1, 4).reshape(n, h, w, c)

        ww, bw = self.mlp_w.resampled(w)
        # (N, H, W, g, S) -> (N, g, H, W*S)
        w_embed = x.reshape(n, h, w, g, s).permute(0, 3, 1, 2, 4).reshape(n, g, h, w * s)
        w_embed = F.linear(w_embed, ww, bw).reshape(n, g, h, w, s).permute(0, 2, 3, 1, 4).reshape(n, h, w, c)

        a = (h_embed + w_embed + c_embed).mean(dim=(1, 2))  # (N, C)
        a = self.reweight(a).reshape(n, c, 3).permute(2, 0, 1).softmax(dim=0)  # (3, N, C)
        a = a.unsqueeze(2).unsqueeze(2)  # (3, N, 1, 1, C)
        out = h_embed * a[0] + w_embed * a[1] + c_embed * a[2]
        return self.proj_drop(self.proj(out))


@register_module("vip_mlp", ModuleCard(
    paper="Vision Permutator: A Permutable MLP-Like Architecture for Visual Recognition",
    venue="TPAMI", year=2022, category="token_mixer", seed_section=24,
    paper_url="https://arxiv.org/abs/2106.12368",
    constraints="channels divisible by seg_dim (default 8)", adapter="channels_last",
    deviations_fixed=(
        "seed/official code only runs at H = W = seg_dim (the C x C height/width layers need H*S = C); "
        "here the height/width weights are resampled along their position axes, so any H x W works and "
        "H = W = seg_dim is exactly the paper's layer",
        "seed re-weighting MLP used dropout 0.1 inside; the paper's Mlp has none",
    ),
    notes="weighted Permute-MLP only (the Permutator block's LayerNorms, residuals and Channel-MLP are "
          "the host network's job)",
    ref_params=20752, ref_macs=205524992,
))
def vip_mlp(channels: int, *, out_channels: int | None = None, stride: int = 1, seg_dim: int = 8,
            qkv_bias: bool = False, proj_drop: float = 0.0) -> nn.Module:
    check_shape_preserving("vip_mlp", channels, out_channels, stride)
    return adapt("channels_last", WeightedPermuteMLP(channels, seg_dim, qkv_bias, proj_drop), channels)


__all__ = ["WeightedPermuteMLP", "vip_mlp"]
