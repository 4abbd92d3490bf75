"""Reference check for ``src/litevision/modules/mtgnn.py``: the temporal convolution module of MTGNN (Wu et al.,
KDD 2020, arXiv 2005.11650) is causal (no output depends on later time steps)."""

from __future__ import annotations

import torch

import litevision as lv


def test_mtgnn_temporal_conv_is_causal() -> None:
    m = lv.create_module("mtgnn_temporal_conv", 8, dilation=2).eval()
    x = torch.randn(1, 8, 3, 20)
    x2 = x.clone()
    x2[..., 12:] = torch.randn_like(x2[..., 12:])
    with torch.no_grad():
        torch.testing.assert_close(m(x2)[..., :12], m(x)[..., :12])
        assert not torch.allclose(m(x2)[..., 12:], m(x)[..., 12:])
