"""Reference check for ``src/litevision/modules/dilateformer.py``: multi-scale dilated attention of DilateFormer
(Jiao et al., IEEE TMM 2023, arXiv 2302.01791): each head group sees only its dilated 3 x 3 neighbourhood."""

from __future__ import annotations

import torch

import litevision as lv


def test_dilateformer_attends_to_dilated_neighbourhoods() -> None:
    """Perturbing a pixel changes the output only inside the union of the dilated 3x3 neighbourhoods."""
    torch.manual_seed(0)
    m = lv.create_module("dilateformer_attention", 24, num_heads=3).eval()  # one head per rate 1, 2, 3
    x = torch.randn(1, 24, 15, 15)
    x2 = x.clone()
    x2[0, :, 7, 7] += 5.0
    with torch.no_grad():
        changed = (m(x2) - m(x)).abs().sum(1)[0] > 1e-6
    expected = torch.zeros(15, 15, dtype=torch.bool)
    for r in (1, 2, 3):
        for dy in (-r, 0, r):
            for dx in (-r, 0, r):
                expected[7 + dy, 7 + dx] = True
    assert torch.equal(changed, expected)
