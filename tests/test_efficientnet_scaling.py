"""EfficientNet B1-B7 are computed from B0 by compound scaling: the computed per-row widths and depths equal
the released architectures (torchvision's configuration tables, read without building the models)."""

from __future__ import annotations

import math

import pytest

import litevision as lv
from litevision.models.efficientnet import (
    B0,
    RELEASED_SCALING,
    CompoundScaling,
    compound_coefficients,
    scale_cfg,
)


@pytest.mark.parametrize("phi", sorted(RELEASED_SCALING))
def test_scaled_rows_match_released_architecture(phi: int) -> None:
    from torchvision.models.efficientnet import _efficientnet_conf

    s = RELEASED_SCALING[phi]
    settings, last_channel = _efficientnet_conf(f"efficientnet_b{phi}", width_mult=s.width_mult,
                                                depth_mult=s.depth_mult)
    cfg = scale_cfg(B0, s)
    assert cfg.stem_chs == settings[0].input_channels
    assert [(r.exp_ratio, r.kernel_size, r.stride, r.out_chs, r.repeats) for r in cfg.rows] == [
        (t.expand_ratio, t.kernel, t.stride, t.out_channels, t.num_layers) for t in settings]
    assert cfg.head_chs == (last_channel or 4 * settings[-1].out_channels)


def test_scaling_rounds_widths_to_8_and_depths_up() -> None:
    cfg = scale_cfg(B0, CompoundScaling(width_mult=1.1, depth_mult=1.2, resolution=260, dropout=0.3))
    assert [r.out_chs for r in cfg.rows] == [16, 24, 48, 88, 120, 208, 352]  # 40*1.1=44 -> 48, 80*1.1=88
    assert [r.repeats for r in cfg.rows] == [math.ceil(n * 1.2) for n in (1, 2, 2, 3, 3, 4, 1)]
    assert (cfg.stem_chs, cfg.head_chs, cfg.dropout) == (32, 1408, 0.3)


def test_paper_rule_and_released_coefficients() -> None:
    """φ = 1 of the rule is the grid-searched (α, β, γ); the released B1-B7 use their own coefficients."""
    one = compound_coefficients(1)
    assert (one.depth_mult, one.width_mult, one.resolution) == (1.2, 1.1, round(224 * 1.15))
    # FLOPs grow ~2^φ under the rule: α·β²·γ² ≈ 2
    assert 1.9 < one.depth_mult * one.width_mult**2 * (one.resolution / 224) ** 2 < 2.1
    assert RELEASED_SCALING[0] == CompoundScaling(1.0, 1.0, 224, 0.2)
    assert compound_coefficients(7).depth_mult > RELEASED_SCALING[7].depth_mult


@pytest.mark.parametrize("phi", sorted(RELEASED_SCALING))
def test_cards_carry_paper_resolution_and_dropout(phi: int) -> None:
    name = f"efficientnet_b{phi}"
    s = RELEASED_SCALING[phi]
    assert lv.get_model_card(name).input_size == (3, s.resolution, s.resolution)
    if phi <= 1:  # building is cheap here; larger variants share the same code path
        model = lv.create_model(name)
        assert model.drop_rate == s.dropout and model.head.drop.p == s.dropout
