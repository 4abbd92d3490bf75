"""Reference check for ``src/litevision/modules/cot_attention.py``: the Contextual Transformer block (Li et al.,
TPAMI 2022, arXiv 2107.12292), local k x k aggregation of the values with interleaved weight groups,
against a per-pixel loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import litevision as lv


def test_cot_aggregates_values_locally_with_interleaved_weight_groups() -> None:
    torch.manual_seed(0)
    m = lv.create_module("cot_attention", 16).eval()  # G = 2 weight groups, k = 3
    x = torch.randn(1, 16, 4, 5)
    captured = {}
    m.bn.register_forward_hook(lambda mod, inp, out: captured.update(k2=inp[0].clone()))  # returns None
    with torch.no_grad():
        m(x)
        w = m.embed(torch.cat([x, m.key_embed(x)], 1)).reshape(2, 9, 4, 5)
        v = F.pad(m.value_embed(x)[0], (1, 1, 1, 1))
        ref = torch.zeros(16, 4, 5)
        for c in range(16):
            for i in range(4):
                for j in range(5):
                    taps = [(u, t) for u in range(3) for t in range(3)]
                    ref[c, i, j] = sum(w[c % 2, 3 * u + t, i, j] * v[c, i + u, j + t] for u, t in taps)
    torch.testing.assert_close(captured["k2"][0], ref, rtol=1e-4, atol=1e-5)
