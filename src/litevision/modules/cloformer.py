"""CloFormer's efficient attention (Fan et al., "Rethinking Local Perception in Lightweight Vision
Transformer", arXiv 2303.17803), seed 004 section 31.

The heads are split between

- local (high-frequency) branches, one per kernel size: q, k, v from a 1x1 conv, each mixed by a
  depthwise k x k conv; the "AttnConv" context-aware weights are tanh(scale * MLP(q * k)) (1x1 conv,
  Swish, 1x1 conv) and the branch output is those weights * v;
- a global (low-frequency) branch: standard softmax attention whose keys and values come from a
  ``window_size`` x ``window_size`` average-pooled map.

Branch outputs are concatenated over channels and projected by a 1x1 conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving


class _AttnMap(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, dim, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _LocalBranch(nn.Module):
    def __init__(self, dim: int, branch_dim: int, kernel_size: int, qkv_bias: bool) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(dim, 3 * branch_dim, 1, bias=qkv_bias)
        self.mixer = nn.Conv2d(3 * branch_dim, 3 * branch_dim, kernel_size, padding=kernel_size // 2,
                               groups=3 * branch_dim)
        self.attn_map = _AttnMap(branch_dim)


@register_module("cloformer_attention", ModuleCard(
    paper="Rethinking Local Perception in Lightweight Vision Transformer", venue="arXiv", year=2023,
    category="token_mixer", seed_section=31, paper_url="https://arxiv.org/abs/2303.17803",
    constraints="channels divisible by num_heads (8); sum(group_split) == num_heads; "
                "len(kernel_sizes) + 1 == len(group_split)",
    deviations_fixed=(
        "seed's forward appended the local branch only after 'continue' (dead code) and the global branch "
        "inside the loop; here every local branch and then the global branch contribute",
        "seed's global branch needed H and W divisible by window_size (a view crash otherwise); pooling "
        "here uses ceil_mode (the last partial window averages its valid pixels), so any H x W works",
        "seed imported MemoryEfficientSwish from efficientnet_pytorch; nn.SiLU is the same function",
    ),
    ref_params=21248, ref_macs=92624896,
))
class CloFormerAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 num_heads: int = 8, group_split: tuple[int, ...] = (4, 4), kernel_sizes: tuple[int, ...] = (5,),
                 window_size: int = 4, qkv_bias: bool = True, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("cloformer_attention", channels, out_channels, stride)
        self.stride = 1
        if sum(group_split) != num_heads or len(kernel_sizes) + 1 != len(group_split):
            raise ValueError("cloformer_attention: sum(group_split) must equal num_heads and "
                             "len(kernel_sizes) + 1 must equal len(group_split)")
        if channels % num_heads:
            raise ValueError(f"cloformer_attention: channels ({channels}) must be divisible by num_heads "
                             f"({num_heads})")
        self.dim_head = channels // num_heads
        self.scale = self.dim_head ** -0.5
        self.window_size = window_size
        self.local = nn.ModuleList(
            _LocalBranch(channels, heads * self.dim_head, k, qkv_bias)
            for heads, k in zip(group_split[:-1], kernel_sizes, strict=True) if heads > 0
        )
        self.global_heads = group_split[-1]
        if self.global_heads > 0:
            self.global_q = nn.Conv2d(channels, self.global_heads * self.dim_head, 1, bias=qkv_bias)
            self.global_kv = nn.Conv2d(channels, 2 * self.global_heads * self.dim_head, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(channels, channels, 1, bias=qkv_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def _local(self, x: Tensor, branch: _LocalBranch) -> Tensor:
        n, _, h, w = x.shape
        q, k, v = branch.mixer(branch.qkv(x)).reshape(n, 3, -1, h, w).unbind(1)  # each (N, m*d, H, W)
        weights = torch.tanh(branch.attn_map(q * k) * self.scale)
        return weights * v

    def _global(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        m, d = self.global_heads, self.dim_head
        q = self.global_q(x).reshape(n, m, d, h * w).transpose(-1, -2)  # (N, m, HW, d)
        pooled = x
        if self.window_size > 1:
            pooled = F.avg_pool2d(x, self.window_size, self.window_size, ceil_mode=True, count_include_pad=False)
        k, v = self.global_kv(pooled).reshape(n, 2, m, d, -1).unbind(1)  # each (N, m, d, hw)
        attn = (q * self.scale) @ k  # (N, m, HW, hw)
        out = attn.softmax(dim=-1) @ v.transpose(-1, -2)  # (N, m, HW, d)
        return out.transpose(-1, -2).reshape(n, m * d, h, w)

    def forward(self, x: Tensor) -> Tensor:
        outs = [self._local(x, branch) for branch in self.local]
        if self.global_heads > 0:
            outs.append(self._global(x))
        return self.proj_drop(self.proj(torch.cat(outs, dim=1)))
