"""Multipath dynamic attention with key-token selection (MDAM, LCNet's global branch).

LCNet (Yang et al., Image and Vision Computing 2025; seed 000): multi-scale features (MSMod2: 1×1 /
3×3 / 5×5 paths, concat) → linear Q, K, V (embedding 64) → ``A = softmax(QKᵀ/√d)`` → the column sums
``A_s[j] = Σ_i A[i, j]`` rank the key tokens → the top-k keys are kept, the rest set to 0 → the kept
attention is scaled by a correction coefficient α ∈ (0, 1) → ``Concat_heads(A'V) W``.

Budget: full global attention over the 56×56 tokens of stage 1 would cost more than 1 G MACs per block,
more than the paper's whole LCNet-T. Queries stay at full resolution, keys and values come from the
multi-scale features average-pooled to a ``pool_size × pool_size`` grid (7×7 = 49 tokens by default;
inputs already smaller are not pooled). The selection keeps ``round(key_keep_ratio · S)`` of the S key
tokens per sample and head, gathered in one batched ``gather`` (no loop over samples or heads), so the
``A'V`` product only touches the kept keys. Attention weights are *not* renormalized after dropping keys
(the guide sets them to 0 and scales the rest by α).

α is learned per head as ``sigmoid(alpha_logit)`` (0.5 at initialisation), which keeps it in (0, 1)
without clipping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litevision.layers.conv_norm_act import ConvNormAct
from litevision.layers.dynamic_conv import MultiScaleConv
from litevision.layers.fuse import fuse_bn_linear


def _pool_to_grid(x: Tensor, grid_h: int, grid_w: int) -> Tensor:
    """Adaptive average pooling of (B, C, H, W) to (B, C, grid_h, grid_w).

    A plain average pool when the grid divides the map (every stage at 224 input); otherwise the adaptive
    bins as two small averaging matrices, ``P_h · x · P_wᵀ`` — the same values as
    ``F.adaptive_avg_pool2d``, but ONNX exporters take it at any size (they refuse adaptive pooling whose
    output does not divide its input).
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % grid_h == 0 and w % grid_w == 0:
        return x if (h, w) == (grid_h, grid_w) else F.avg_pool2d(x, (h // grid_h, w // grid_w))
    pool_h = _adaptive_bins(h, grid_h, x)
    pool_w = _adaptive_bins(w, grid_w, x)
    return pool_h @ x @ pool_w.t()


def _adaptive_bins(size: int, bins: int, like: Tensor) -> Tensor:
    """(bins, size) averaging matrix of adaptive pooling: bin i covers [⌊i·n/b⌋, ⌈(i+1)·n/b⌉)."""
    i = torch.arange(bins, device=like.device)
    start, end = (i * size) // bins, ((i + 1) * size + bins - 1) // bins
    j = torch.arange(size, device=like.device)
    member = ((j >= start[:, None]) & (j < end[:, None])).to(like.dtype)
    return member / member.sum(1, keepdim=True)


class TokenSelectAttention(nn.Module):
    """MDAM: attention from full-resolution queries to the top-k of a pooled grid of keys.

    Args:
        chs: input and output channels.
        embed_dim: width of Q, K and V over all heads (the paper's embedding size, 64).
        num_heads: attention heads (``embed_dim`` must divide by it).
        pool_size: keys/values come from a ``pool_size × pool_size`` average-pooled grid.
        key_keep_ratio: share of key tokens kept by the column-sum ranking (1.0 keeps all).
        ms_kernel_sizes: MSMod2's per-split kernel sizes.
    """

    def __init__(
        self,
        chs: int,
        embed_dim: int = 64,
        num_heads: int = 2,
        pool_size: int = 7,
        key_keep_ratio: float = 0.5,
        ms_kernel_sizes: Sequence[int] = (1, 3, 5),
        act_layer: str | Callable[..., nn.Module] | None = "relu",
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        if not 0.0 < key_keep_ratio <= 1.0:
            raise ValueError(f"key_keep_ratio must be in (0, 1], got {key_keep_ratio}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.pool_size, self.key_keep_ratio = pool_size, key_keep_ratio
        self.scale = self.head_dim ** -0.5
        self.features = MultiScaleConv(chs, ms_kernel_sizes, act_layer)
        self.q = nn.Linear(chs, embed_dim)
        self.kv = nn.Linear(chs, 2 * embed_dim)
        self.alpha_logit = nn.Parameter(torch.zeros(num_heads))
        self.proj = ConvNormAct(embed_dim, chs, 1, act_layer=None)

    @property
    def alpha(self) -> Tensor:
        """The per-head correction coefficients α ∈ (0, 1)."""
        return torch.sigmoid(self.alpha_logit)

    def num_kept(self, num_tokens: int) -> int:
        return max(1, min(num_tokens, round(self.key_keep_ratio * num_tokens)))

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        heads, d = self.num_heads, self.head_dim
        feats = self.features(x)
        pooled = _pool_to_grid(feats, min(self.pool_size, int(h)), min(self.pool_size, int(w)))
        s = int(pooled.shape[-2] * pooled.shape[-1])
        # (B, C, H, W) -> (B, HW, C) -> (B, HW, E) -> (B, heads, HW, d)
        q = self.q(feats.flatten(2).transpose(1, 2)).view(b, h * w, heads, d).transpose(1, 2)
        # (B, C, h', w') -> (B, S, 2E) -> 2 x (B, heads, S, d)
        k, v = self.kv(pooled.flatten(2).transpose(1, 2)).view(b, s, 2, heads, d).permute(2, 0, 3, 1, 4)
        attn = (q @ (k * self.scale).transpose(-2, -1)).softmax(-1)  # (B, heads, HW, S); 1/√d on the S keys
        keep = self.num_kept(s)
        if keep < s:
            index = attn.sum(2).topk(keep, dim=-1).indices  # A_s: column sums rank the key tokens
            attn = attn.gather(-1, index.unsqueeze(2).expand(b, heads, h * w, keep))
            v = v.gather(2, index.unsqueeze(-1).expand(b, heads, keep, d))
        v = v * self.alpha.view(1, heads, 1, 1)  # α scales the kept attention (applied to the k values)
        # (A' V)ᵀ = Vᵀ A'ᵀ comes out channels-first: (B, heads, d, HW) -> (B, E, H, W) without a copy
        out = v.transpose(-2, -1) @ attn.transpose(-2, -1)
        return self.proj(out.reshape(b, heads * d, h, w))

    @torch.no_grad()
    def fuse(self) -> TokenSelectAttention:
        """Fold MSMod2's BatchNorm into the Q and K/V projections (average pooling commutes with it)."""
        if isinstance(self.features.bn, nn.BatchNorm2d):
            self.q = fuse_bn_linear(self.features.bn, self.q)
            self.kv = fuse_bn_linear(self.features.bn, self.kv)
            self.features.bn = nn.Identity()
        return self

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, pool_size={self.pool_size}, "
                f"key_keep_ratio={self.key_keep_ratio}")
