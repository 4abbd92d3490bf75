"""Reference check for ``src/litevision/modules/s2_attention.py``: the spatial-shift operation of S2-MLPv2
(Yu et al., 2021, arXiv 2108.01072): each channel quarter moves by one pixel (down, up, right, left)
without smearing."""

from __future__ import annotations

import torch

from litevision.modules.s2_attention import SHIFT_1, spatial_shift


def test_s2_shift_moves_each_quarter_by_one_without_smearing() -> None:
    x = torch.arange(5.0)[None, :, None, None].expand(1, 5, 3, 4).clone()  # value = row index, C = 4
    out = spatial_shift(x, SHIFT_1)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 0, 1, 2, 3]))  # down: row i <- i - 1
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor([1.0, 2, 3, 4, 4]))  # up: row i <- i + 1
    torch.testing.assert_close(out[0, :, :, 2], x[0, :, :, 2])  # W shifts of a row-constant map: unchanged
