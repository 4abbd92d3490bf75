"""Reference check for ``src/litevision/modules/epsa.py``: the pyramid split attention of EPSANet (Zhang et al.,
ACCV 2022, arXiv 2105.14447): kernels 3/5/7/9 with groups 1/4/8/16, softmax over the scales, concatenation."""

from __future__ import annotations

import torch

import litevision as lv


def test_epsa_concatenates_the_scales() -> None:
    torch.manual_seed(0)
    m = lv.create_module("epsa", 32, out_channels=64).eval()
    x = torch.randn(2, 32, 9, 11)
    with torch.no_grad():
        out = m(x)
        feats = [conv(x) for conv in m.convs]
        weights = torch.stack([m.se(f) for f in feats], 1).softmax(1)
    assert [c.kernel_size[0] for c in m.convs] == [3, 5, 7, 9]
    assert [c.groups for c in m.convs] == [1, 4, 8, 16]
    for i, f in enumerate(feats):
        torch.testing.assert_close(out[:, 16 * i:16 * (i + 1)], f * weights[:, i])
