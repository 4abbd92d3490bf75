"""Check for ``src/litevision/modules/shuffle_attention.py``: Shuffle Attention (Zhang & Yang, SA-Net, ICASSP
2021, arXiv 2102.00240): the group-count fallback and the explicit divisibility error."""

from __future__ import annotations

import pytest

import litevision as lv


def test_shuffle_attention_group_fallback_and_explicit_error() -> None:
    assert lv.create_module("shuffle_attention", 24).groups == 6
    with pytest.raises(ValueError, match="divisible"):
        lv.create_module("shuffle_attention", 24, groups=8)
