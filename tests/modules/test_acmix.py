"""Reference check for ``src/litevision/modules/acmix.py``: ACmix (Pan et al., "On the Integration of
Self-Attention and Convolution", CVPR 2022, arXiv 2111.14556): shift-kernel initialisation of the
convolution path, the 0.5 / 0.5 path rates and striding."""

from __future__ import annotations

import math

import torch

import litevision as lv


def test_acmix_shift_kernel_init_and_stride() -> None:
    m = lv.create_module("acmix", 16, out_channels=32, stride=2, num_heads=4)
    assert m(torch.randn(1, 16, 13, 9)).shape == (1, 32, 7, 5)
    w = m.dep_conv.weight  # (out, k*k, k, k): input group i is a one-hot at tap i
    for i in range(9):
        tap = torch.zeros(3, 3)
        tap[i // 3, i % 3] = 1.0
        assert torch.equal(w[:, i], tap.expand(32, 3, 3))
    assert math.isclose(float(m.rate1), 0.5) and math.isclose(float(m.rate2), 0.5)
