"""Reference check for ``src/litevision/modules/eca.py``: ECA-Net (Wang et al., CVPR 2020, arXiv 1910.03151),
the paper's adaptive 1-D kernel size, the odd number nearest to (log2(C) + 1) / 2."""

from __future__ import annotations

import pytest

import litevision as lv
from litevision.modules.eca import eca_kernel_size


@pytest.mark.parametrize(("channels", "k"), [(16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (2048, 7)])
def test_eca_kernel_follows_channel_rule(channels: int, k: int) -> None:
    assert eca_kernel_size(channels) == k
    assert lv.create_module("eca", channels).conv.kernel_size == (k,)
