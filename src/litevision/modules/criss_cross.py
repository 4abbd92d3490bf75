"""Criss-cross attention of CCNet (Huang et al., ICCV 2019, arXiv 1811.11721), seed 004 section 36.

Each pixel attends to the H + W - 1 pixels of its own row and column: energies from 1x1-conv queries and
keys (C/8 channels), the pixel itself counted once (masked out of the column part), one softmax over the
row and column together, values from a 1x1 conv (C channels); output gamma * aggregated + x with gamma
initialised to 0. The paper's recurrent form (RCCA) applies the same module R = 2 times so that every
pixel reaches every other one; ``recurrence`` sets R.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from litevision.modules._registry import ModuleCard, register_module
from litevision.modules._support import check_shape_preserving


@register_module("criss_cross_attention", ModuleCard(
    paper="CCNet: Criss-Cross Attention for Semantic Segmentation", venue="ICCV", year=2019,
    category="spatial", seed_section=36, paper_url="https://arxiv.org/abs/1811.11721",
    constraints="channels >= 8 (queries/keys have C // 8 channels)",
    deviations_fixed=(
        "seed cites CrossFormer (arXiv 2108.00154) but its code is CCNet's criss-cross attention; the card "
        "names CCNet",
        "seed does not run (the concatenated energies are stored as 'concat' and read as 'concatenate') and "
        "built its -inf diagonal on the CPU with a batch-sized repeat; here a boolean self-mask built on the "
        "input's device",
        "recurrence R = 2 (the paper's RCCA, weights shared) instead of a single pass",
    ),
    ref_params=5201, ref_macs=82690048,
))
class CrissCrossAttention(nn.Module):
    def __init__(self, channels: int, *, out_channels: int | None = None, stride: int = 1,
                 recurrence: int = 2, rd_ratio: float = 1 / 8) -> None:
        super().__init__()
        self.out_channels = check_shape_preserving("criss_cross_attention", channels, out_channels, stride)
        self.stride = 1
        qk = int(channels * rd_ratio)
        if qk < 1:
            raise ValueError(f"criss_cross_attention: channels * rd_ratio must be >= 1 (channels={channels})")
        if recurrence < 1:
            raise ValueError("criss_cross_attention: recurrence must be >= 1")
        self.recurrence = recurrence
        self.query = nn.Conv2d(channels, qk, 1)
        self.key = nn.Conv2d(channels, qk, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def _once(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q, k, v = self.query(x), self.key(x), self.value(x)
        energy_h = torch.einsum("nchw,ncgw->nhwg", q, k)  # (N, H, W, H): same column, key row g
        energy_w = torch.einsum("nchw,nchg->nhwg", q, k)  # (N, H, W, W): same row, key column g
        rows = torch.arange(h, device=x.device)
        self_mask = (rows.view(h, 1, 1) == rows.view(1, 1, h))  # (H, 1, H): key row == query row
        energy_h = energy_h.masked_fill(self_mask, float("-inf"))  # the pixel itself is in energy_w
        attn = torch.cat([energy_h, energy_w], dim=-1).softmax(dim=-1)
        attn_h, attn_w = attn[..., :h], attn[..., h:]
        out = torch.einsum("nhwg,ncgw->nchw", attn_h, v) + torch.einsum("nhwg,nchg->nchw", attn_w, v)
        return self.gamma * out + x

    def forward(self, x: Tensor) -> Tensor:
        for _ in range(self.recurrence):
            x = self._once(x)
        return x
