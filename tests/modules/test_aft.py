"""Reference checks for ``src/litevision/modules/aft.py``: AFT-full and AFT-simple (Zhai et al., "An Attention
Free Transformer", arXiv 2105.14103) against the paper's formula, and AFT-full's stability for large logits."""

from __future__ import annotations

import torch

import litevision as lv


def _inner(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "inner", module)


def test_aft_full_and_simple_match_the_paper_formula() -> None:
    full = lv.create_module("aft_full", 8, pos_size=(3, 4), pos_dim=16).double().eval()
    simple = lv.create_module("aft_simple", 8).double().eval()
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    tokens = x.flatten(2).transpose(1, 2)  # (N, T, C)
    with torch.no_grad():
        inner = _inner(full)
        q, k, v = inner.to_q(tokens), inner.to_k(tokens), inner.to_v(tokens)
        w = inner.position_biases((3, 4))
        ref = torch.empty_like(q)
        for t in range(12):
            e = torch.exp(k + w[t].view(1, -1, 1))  # (N, T', C)
            ref[:, t] = torch.sigmoid(q[:, t]) * (e * v).sum(1) / e.sum(1)
        torch.testing.assert_close(full(x), ref.transpose(1, 2).reshape(2, 8, 3, 4))
        inner = _inner(simple)
        q, k, v = inner.to_q(tokens), inner.to_k(tokens), inner.to_v(tokens)
        ref = torch.sigmoid(q) * (torch.softmax(k, dim=1) * v).sum(1, keepdim=True)
        torch.testing.assert_close(simple(x), ref.transpose(1, 2).reshape(2, 8, 3, 4))


def test_aft_full_is_stable_for_large_logits() -> None:
    m = lv.create_module("aft_full", 8).eval()
    with torch.no_grad():
        _inner(m).to_k.weight.mul_(1e4)
        out = m(torch.randn(1, 8, 9, 5))
    assert torch.isfinite(out).all()
