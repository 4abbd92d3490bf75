"""Reference checks for ``src/litevision/modules/fcanet.py``: multi-spectral channel attention of FcaNet (Qin et
al., ICCV 2021, arXiv 2012.11879): orthonormal 2D-DCT filters kept as buffers, any input size pooled to the
7 x 7 DCT grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import litevision as lv


def test_fcanet_dct_filters_are_buffers_and_orthonormal() -> None:
    m = lv.create_module("fcanet", 32)
    assert "dct_filter" in dict(m.named_buffers()) and "dct_filter" in m.state_dict()
    assert not any(p is m.dct_filter for p in m.parameters())
    m = m.double()
    assert m.dct_filter.dtype == torch.float64
    basis = m.dct_filter[::2].flatten(1)  # one filter per frequency group (32 channels / 16 freqs)
    torch.testing.assert_close(basis @ basis.T, torch.eye(16, dtype=torch.float64), atol=1e-6, rtol=0)
    # frequency (0, 0) is the GAP direction: constant 1/7 on the 7x7 grid
    torch.testing.assert_close(m.dct_filter[0], torch.full((7, 7), 1 / 7, dtype=torch.float64), atol=1e-7, rtol=0)


def test_fcanet_any_size_pools_to_the_dct_grid() -> None:
    m = lv.create_module("fcanet", 32).double().eval()
    x = torch.randn(2, 32, 23, 10, dtype=torch.float64)
    y = (F.adaptive_avg_pool2d(x, 7) * m.dct_filter).sum((2, 3))
    torch.testing.assert_close(m(x), x * m.fc(y).view(2, 32, 1, 1))
