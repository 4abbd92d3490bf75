"""Reference checks for ``src/litevision/modules/biformer.py``: Bi-Level Routing Attention of BiFormer (Zhu et
al., CVPR 2023, arXiv 2303.08810): with every region routed it is global attention (+ LCE), and otherwise
each token attends only to the top-k routed regions (per-pixel reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import litevision as lv


@pytest.mark.parametrize("size", [(14, 14), (13, 10)])
def test_biformer_with_all_regions_routed_is_full_attention(size: tuple[int, int]) -> None:
    """topk = every region: BRA == global multi-head attention (+ LCE), padding masked out exactly."""
    m = lv.create_module("biformer_attention", 32, num_heads=2, n_win=7, topk=49).double().eval()
    x = torch.randn(2, 32, *size, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = m.qkv(x).chunk(3, dim=1)
        heads = [t.reshape(2, 2, 16, -1) for t in (q, k, v)]  # (N, m, d, HW)
        attn = (heads[0].transpose(-1, -2) * m.scale) @ heads[1]  # (N, m, HW, HW)
        out = (attn.softmax(-1) @ heads[2].transpose(-1, -2)).transpose(-1, -2).reshape(2, 32, *size)
        torch.testing.assert_close(m(x), m.proj(out + m.lepe(v)))


def test_biformer_token_attention_sees_only_the_routed_regions() -> None:
    m = lv.create_module("biformer_attention", 16, num_heads=2, n_win=4, topk=2).double().eval()
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = m.qkv(x).chunk(3, dim=1)
        region = lambda i, j: (i // 2) * 4 + j // 2  # noqa: E731  2x2 regions on a 4x4 grid
        q_r = F.avg_pool2d(q, 2).flatten(2)[0].T  # (16, C)
        k_r = F.avg_pool2d(k, 2).flatten(2)[0]  # (C, 16)
        routed = torch.topk(q_r @ k_r, 2, dim=-1).indices  # (16, 2)
        out = torch.empty_like(q)
        for i in range(8):
            for j in range(8):
                keys = [(a, b) for a in range(8) for b in range(8) if region(a, b) in routed[region(i, j)].tolist()]
                for h in range(2):
                    sl = slice(8 * h, 8 * h + 8)
                    e = torch.stack([q[0, sl, i, j] @ k[0, sl, a, b] for a, b in keys]) * m.scale
                    att = e.softmax(0)
                    out[0, sl, i, j] = sum(att[t] * v[0, sl, a, b] for t, (a, b) in enumerate(keys))
        torch.testing.assert_close(m(x), m.proj(out + m.lepe(v)))
