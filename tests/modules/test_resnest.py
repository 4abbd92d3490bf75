"""Reference check for ``src/litevision/modules/resnest.py``: the Split-Attention convolution of ResNeSt (Zhang
et al., CVPRW 2022, arXiv 2004.08955): the radix softmax sums to one in every cardinal group."""

from __future__ import annotations

import math

import torch

import litevision as lv


def test_split_attention_radix_softmax_sums_to_one() -> None:
    m = lv.create_module("split_attention", 32, groups=2).eval()
    captured = {}
    m.fc2.register_forward_hook(lambda mod, inp, out: captured.__setitem__("attn", out))
    with torch.no_grad():
        m(torch.randn(2, 32, 5, 7))
    attn = captured["attn"].reshape(2, 2, 2, -1).transpose(1, 2).softmax(dim=1)  # (N, radix, G, C/G)
    torch.testing.assert_close(attn.sum(1), torch.ones_like(attn.sum(1)))
    assert math.isclose(float(m(torch.randn(1, 32, 4, 4)).shape[1]), 32)
