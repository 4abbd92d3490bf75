"""Reference check for ``src/litevision/modules/vip.py``: the Weighted Permute-MLP of Vision Permutator (Hou et
al., TPAMI 2022, arXiv 2106.12368): at H = W = seg_dim the height layer is the paper's plain Linear."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import litevision as lv


def _inner(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "inner", module)


def test_vip_at_the_reference_size_is_the_papers_layer() -> None:
    """H = W = seg_dim: the height layer is the plain (H*S) x (H*S) Linear of the paper."""
    m = lv.create_module("vip_mlp", 16, seg_dim=4).double().eval()
    inner = _inner(m)
    x = torch.randn(2, 4, 4, 16, dtype=torch.float64)  # channels-last
    s = 4
    h_ref = x.reshape(2, 4, 4, 4, s).permute(0, 3, 2, 1, 4).reshape(2, 4, 4, 16)
    h_ref = F.linear(h_ref, inner.mlp_h.weight).reshape(2, 4, 4, 4, s).permute(0, 3, 2, 1, 4).reshape(2, 4, 4, 16)
    with torch.no_grad():
        weight, _ = inner.mlp_h.resampled(4)
        assert weight is inner.mlp_h.weight
        # the traced path resamples 4 -> 4 with bilinear interpolation: that must be the identity
        resized = F.interpolate(weight.view(4, s, 4, s).permute(1, 3, 0, 2).reshape(s * s, 1, 4, 4), size=(4, 4),
                                mode="bilinear", align_corners=False)
        torch.testing.assert_close(resized.view(s, s, 4, 4).permute(2, 0, 3, 1).reshape(16, 16), weight)
        h_embed = x.reshape(2, 4, 4, 4, s).permute(0, 3, 2, 1, 4).reshape(2, 4, 4, 16)
        h_embed = F.linear(h_embed, weight).reshape(2, 4, 4, 4, s).permute(0, 3, 2, 1, 4).reshape(2, 4, 4, 16)
        torch.testing.assert_close(h_embed, h_ref)
        assert m(x.permute(0, 3, 1, 2)).shape == (2, 16, 4, 4)
