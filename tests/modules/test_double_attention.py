"""Reference check for ``src/litevision/modules/double_attention.py``: the A^2 double attention block (Chen et
al., "A^2-Nets: Double Attention Networks", NeurIPS 2018, arXiv 1810.11579), softmax axes of the gather and
distribute steps against a literal implementation."""

from __future__ import annotations

import torch

import litevision as lv


def test_double_attention_softmax_axes_match_the_paper() -> None:
    """Gather: softmax over positions; distribute: softmax over the c_n descriptors (never the batch)."""
    m = lv.create_module("double_attention", 16, residual=False).double().eval()
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        a = m.conv_a(x).flatten(2)  # (N, c_m, L)
        b = m.conv_b(x).flatten(2)
        v = m.conv_v(x).flatten(2)
        ref = torch.zeros(2, m.c_m, 30, dtype=torch.float64)
        for n in range(2):
            g = torch.stack([(a[n] * torch.softmax(b[n, i], dim=0)).sum(-1) for i in range(m.c_n)], dim=1)
            for j in range(30):
                ref[n, :, j] = g @ torch.softmax(v[n, :, j], dim=0)
        ref = m.reconstruct(ref.view(2, m.c_m, 5, 6))
        torch.testing.assert_close(m(x), ref)
