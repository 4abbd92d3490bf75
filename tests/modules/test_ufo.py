"""Reference check for ``src/litevision/modules/ufo.py``: UFO attention (Song, UFO-ViT, arXiv 2109.14382), XNorm
as gamma^2-scaled cosine similarity of Q and K^T V (the paper's column axis, and the ``kv_norm="row"`` option)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import litevision as lv


def _inner(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "inner", module)


def test_ufo_attention_is_gamma_squared_cosine_similarity() -> None:
    m = lv.create_module("ufo_attention", 16, num_heads=2).double().eval()
    inner = _inner(m)
    with torch.no_grad():
        inner.gamma_q.fill_(1.5)
        inner.gamma_kv.fill_(2.0)
    x = torch.randn(1, 16, 3, 5, dtype=torch.float64)
    tokens = x.flatten(2).transpose(1, 2)
    with torch.no_grad():
        q, k, v = inner.qkv(tokens).reshape(1, 15, 3, 2, 8).permute(2, 0, 3, 1, 4)
        kv = k.transpose(-2, -1) @ v  # (1, heads, 8, 8)
        cos = F.normalize(q, dim=-1) @ F.normalize(kv, dim=-2)
        ref = inner.proj((3.0 * cos).transpose(1, 2).reshape(1, 15, 16))
        torch.testing.assert_close(m(x), ref.transpose(1, 2).reshape(1, 16, 3, 5))
        # kv_norm="row": the seed's axis (each row of K^T V normalised)
        row = lv.create_module("ufo_attention", 16, num_heads=2, kv_norm="row").double().eval()
        row.load_state_dict(m.state_dict())
        out = F.normalize(q, dim=-1) @ F.normalize(kv, dim=-1)
        ref = inner.proj((3.0 * out).transpose(1, 2).reshape(1, 15, 16))
        torch.testing.assert_close(row(x), ref.transpose(1, 2).reshape(1, 16, 3, 5))
