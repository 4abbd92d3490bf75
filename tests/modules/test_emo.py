"""Reference check for ``src/litevision/modules/emo.py``: the window attention of EMO's Inverted Residual Mobile
Block (Zhang et al., ICCV 2023, arXiv 2301.01146): the official strided windows, padded keys masked."""

from __future__ import annotations

import torch

import litevision as lv


def test_irmb_window_attention_uses_strided_windows_and_ignores_padding() -> None:
    """Official EMO windows: window (a, b) holds pixels (i * n1 + a, j * n2 + b); padded keys are masked."""
    m = lv.create_module("irmb", 16, window_size=3, head_dim=8).double().eval()
    x = torch.randn(1, 16, 7, 5, dtype=torch.float64)  # padded to 9 x 6: n1 = 3, n2 = 2
    n1, n2 = 3, 2
    with torch.no_grad():
        qk = m.qk(x)
        q, k = qk[:, :16], qk[:, 16:]
        v = m.v(x)  # (1, 32, 7, 5)
        ref = torch.zeros_like(v)
        for a in range(n1):
            for b in range(n2):
                pix = [(i * n1 + a, j * n2 + b) for i in range(3) for j in range(3)]
                pix = [(y, z) for y, z in pix if y < 7 and z < 5]
                for head in range(2):
                    qs, vs = slice(8 * head, 8 * head + 8), slice(16 * head, 16 * head + 16)
                    for y, z in pix:
                        e = torch.stack([q[0, qs, y, z] @ k[0, qs, yy, zz] for yy, zz in pix]) * 8 ** -0.5
                        att = e.softmax(0)
                        ref[0, vs, y, z] = sum(att[t] * v[0, vs, yy, zz] for t, (yy, zz) in enumerate(pix))
        torch.testing.assert_close(m._attention(x), ref)
