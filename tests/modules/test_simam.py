"""Reference check for ``src/litevision/modules/simam.py``: SimAM (Yang et al., ICML 2021), the closed-form
minimal energy of the paper's eq. 5, including the 1 x 1 map."""

from __future__ import annotations

import torch

import litevision as lv


def test_simam_closed_form_and_1x1_map() -> None:
    m = lv.create_module("simam", 4)
    x = torch.randn(2, 4, 3, 5)
    d = (x - x.mean((2, 3), keepdim=True)) ** 2
    e_inv = d / (4 * (d.sum((2, 3), keepdim=True) / (3 * 5 - 1) + 1e-4)) + 0.5
    torch.testing.assert_close(m(x), x * torch.sigmoid(e_inv))
    one = torch.randn(1, 4, 1, 1)
    torch.testing.assert_close(m(one), one * torch.sigmoid(torch.tensor(0.5)))
