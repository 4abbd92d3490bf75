"""External Attention (Guo et al., "Beyond Self-attention", TPAMI 2022), seed 004 section 17.

Two small learnable memories shared by the whole data set replace keys and values: attention = M_k(F)
(N x S), normalised by the paper's double normalisation (softmax over the N positions, then l1 over the
S memory slots), output = M_v(attention). Linear in N. Works on tokens (N, L, C): token adapter.
"""

from __future__ import annotations

from torch import Tensor, nn

from litevision.modules._adapters import TokenAdapter
from litevision.modules._registry import ModuleCard, check_shape_preserving, register_module


class ExternalAttention(nn.Module):
    """Tokens (B, L, C) -> (B, L, C) through memories M_k (C x S) and M_v (S x C)."""

    def __init__(self, channels: int, memory_size: int = 64, eps: float = 1e-9) -> None:
        super().__init__()
        self.mk = nn.Linear(channels, memory_size, bias=False)
        self.mv = nn.Linear(memory_size, channels, bias=False)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        attn = self.mk(x).softmax(dim=1)  # (B, L, S): softmax over the L positions of one sample
        attn = attn / (attn.sum(dim=2, keepdim=True) + self.eps)  # l1 over the memory slots
        return self.mv(attn)


@register_module("external_attention", ModuleCard(
    paper="Beyond Self-attention: External Attention using Two Linear Layers for Visual Tasks", venue="TPAMI",
    year=2022, category="token_mixer", seed_section=17, paper_url="https://arxiv.org/abs/2105.02358",
    adapter="token", ref_params=8192, ref_macs=25690112,
    deviations_fixed=("the seed's weight init (Linear ~ N(0, 0.001)) kept as PyTorch default init: the "
                      "double normalisation makes the output scale independent of it",),
))
def external_attention(channels: int, *, out_channels: int | None = None, stride: int = 1,
                       memory_size: int = 64) -> nn.Module:
    check_shape_preserving("external_attention", channels, out_channels, stride)
    return TokenAdapter(ExternalAttention(channels, memory_size), channels)
