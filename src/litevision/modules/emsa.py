"""EMSA: efficient multi-head self-attention of ResT (Zhang & Yang, NeurIPS 2021), seed 004 section 16.

Queries are a linear projection of all tokens. Keys and values come from a spatially reduced map: a
depthwise (s+1) x (s+1) convolution with stride s on the token grid, then LayerNorm. The attention
logits of the heads are mixed by a 1x1 convolution across heads, softmaxed, and instance-normalised
per head ("interaction across the head dimension" that restores the diversity lost with small heads);
then values are aggregated and projected. Token adapter (the module needs the grid size for the
reduction, which the adapter passes). Default reduction s = 4 (ResT's stage-2 ratio; ResT uses 8, 4, 2, 1
from the 56x56 stage to the 7x7 one): a 56x56 map attends to 14x14 keys.
"""

from __future__ import annotations

from torch import Tensor, nn

from litevision.modules._adapters import TokenAdapter, check_size
from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


class EMSA(nn.Module):
    """Tokens (B, H*W, C) with grid ``size`` -> (B, H*W, C)."""

    needs_size = True

    def __init__(self, channels: int, num_heads: int = 4, sr_ratio: int = 4, apply_transform: bool = True,
                 qkv_bias: bool = False) -> None:
        super().__init__()
        self.num_heads, self.sr_ratio = num_heads, sr_ratio
        self.scale = (channels // num_heads) ** -0.5
        self.q = nn.Linear(channels, channels, bias=qkv_bias)
        self.kv = nn.Linear(channels, 2 * channels, bias=qkv_bias)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(channels, channels, sr_ratio + 1, stride=sr_ratio, padding=sr_ratio // 2,
                                groups=channels)
            self.sr_norm = nn.LayerNorm(channels)
        self.apply_transform = apply_transform and num_heads > 1
        if self.apply_transform:
            self.transform_conv = nn.Conv2d(num_heads, num_heads, 1)
            self.transform_norm = nn.InstanceNorm2d(num_heads)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        b, n, c = x.shape
        h, w = size
        heads = self.num_heads
        check_size("emsa", h, w, min_size=2)
        q = self.q(x).reshape(b, n, heads, c // heads).transpose(1, 2)  # (B, heads, N, d)
        if self.sr_ratio > 1:
            grid = x.transpose(1, 2).reshape(b, c, h, w)
            x = self.sr_norm(self.sr(grid).flatten(2).transpose(1, 2))  # (B, N', C)
        k, v = self.kv(x).reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)  # (B, heads, N', d)
        attn = (q @ k.transpose(-1, -2)) * self.scale  # (B, heads, N, N')
        if self.apply_transform:
            attn = self.transform_norm(self.transform_conv(attn).softmax(dim=-1))
        else:
            attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


@register_module("emsa", ModuleCard(
    paper="ResT: An Efficient Transformer for Visual Recognition", venue="NeurIPS", year=2021,
    category="token_mixer", seed_section=16, paper_url="https://arxiv.org/abs/2105.13677", adapter="token",
    constraints="channels divisible by num_heads (4); H, W >= 2 (instance norm over the attention map)",
    min_size=2, ref_params=18260, ref_macs=116119808,
    deviations_fixed=(
        "grid size taken from the input (the seed fixes H = W = 7 at construction and reshapes to it)",
        "attention-map dropout (p = 0.1 in the seed) dropped: it is not part of the paper's EMSA",
        "inputs below 2x2 raise a clear ValueError (instance norm of a 1x1 attention map cannot train)",
    ),
))
def emsa(channels: int, *, out_channels: int | None = None, stride: int = 1, num_heads: int = 4,
         sr_ratio: int = 4, apply_transform: bool = True) -> nn.Module:
    check_shape_preserving("emsa", channels, out_channels, stride)
    if channels % num_heads:
        raise ValueError(f"emsa: channels ({channels}) must be divisible by num_heads ({num_heads})")
    return TokenAdapter(EMSA(channels, num_heads, sr_ratio, apply_transform), channels)
