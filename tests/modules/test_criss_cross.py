"""Reference checks for ``src/litevision/modules/criss_cross.py``: criss-cross attention of CCNet (Huang et al.,
ICCV 2019, arXiv 1811.11721): one softmax over the pixel's row and column (the pixel counted once), and full
context only after two recurrent passes."""

from __future__ import annotations

import torch

import litevision as lv


def test_criss_cross_attention_matches_literal_row_column_softmax() -> None:
    m = lv.create_module("criss_cross_attention", 16, recurrence=1).double().eval()
    with torch.no_grad():
        m.gamma.fill_(0.7)
    x = torch.randn(2, 16, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = m.query(x), m.key(x), m.value(x)
        ref = torch.empty_like(x)
        for n in range(2):
            for i in range(4):
                for j in range(5):
                    # column keys without the pixel itself, then the whole row (the pixel once)
                    keys = [(r, j) for r in range(4) if r != i] + [(i, c) for c in range(5)]
                    e = torch.stack([q[n, :, i, j] @ k[n, :, r, c] for r, c in keys])
                    a = torch.softmax(e, dim=0)
                    ref[n, :, i, j] = sum(a[t] * v[n, :, r, c] for t, (r, c) in enumerate(keys))
        torch.testing.assert_close(m(x), 0.7 * ref + x)


def test_criss_cross_reaches_everything_only_with_two_passes() -> None:
    x = torch.randn(1, 16, 6, 6)
    for recurrence, expect_far in ((1, False), (2, True)):
        m = lv.create_module("criss_cross_attention", 16, recurrence=recurrence).eval()
        with torch.no_grad():
            m.gamma.fill_(1.0)
            x2 = x.clone()
            x2[0, :, 5, 5] += 3.0  # not in row 0 / column 0
            changed = (m(x2) - m(x))[0, :, 0, 0].abs().max() > 1e-6
        assert bool(changed) == expect_far
