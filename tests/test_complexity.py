"""MAC counting conventions (see bench/complexity.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import litevision as lv


class _Attn(nn.Module):
    def __init__(self, heads: int = 2, dim: int = 8) -> None:
        super().__init__()
        self.heads, self.dim = heads, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = x.flatten(2).transpose(1, 2).reshape(b, h * w, self.heads, self.dim).transpose(1, 2)
        return F.scaled_dot_product_attention(q, q, q).transpose(1, 2).reshape(b, h * w, c)


def test_sdpa_counted_on_cpu() -> None:
    # (1, 2 heads, 36 tokens, 8 dims): QK^T 36*36*8 and AV 36*36*8 MACs per head
    c = lv.count_complexity(_Attn(), (16, 6, 6))
    assert c.macs == 2 * (36 * 36 * 8 * 2)


def test_sdpa_math_path_counted_the_same() -> None:
    class Masked(_Attn):
        def forward(self, x):  # an explicit mask routes through the math kernel (bmm ops)
            b, c, h, w = x.shape
            q = x.flatten(2).transpose(1, 2).reshape(b, h * w, self.heads, self.dim).transpose(1, 2)
            mask = torch.ones(h * w, h * w, dtype=torch.bool)
            return F.scaled_dot_product_attention(q, q, q, attn_mask=mask)

    assert lv.count_complexity(Masked(), (16, 6, 6)).macs == 2 * (36 * 36 * 8 * 2)


def test_conv_macs_include_groups_and_depthwise() -> None:
    m = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False),
                      nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
                      nn.Conv2d(16, 32, 1, groups=4, bias=False))
    c = lv.count_complexity(m, (8, 10, 10))
    assert c.macs == 100 * (16 * 8 * 9 + 16 * 9 + 32 * 4)
    assert c.params == 16 * 8 * 9 + 16 * 9 + 32 * 4


def test_registered_formula_for_custom_op() -> None:
    lib = torch.library.Library("lvtest", "DEF")  # noqa: F841 - keeps the namespace alive
    lib.define("scale2(Tensor x) -> Tensor")
    lib.impl("scale2", lambda x: x * 2, "CompositeExplicitAutograd")
    lv.register_macs_formula(torch.ops.lvtest.scale2, lambda x_shape, out_shape=None: x_shape.numel())

    class M(nn.Module):
        def forward(self, x):
            return torch.ops.lvtest.scale2(x)

    assert lv.count_complexity(M(), (3, 4, 5)).macs == 60


def test_training_mode_restored() -> None:
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    lv.count_complexity(m, (3, 8, 8))
    assert m.training
