"""Reference check for ``src/litevision/modules/halo_attention.py``: halo attention (Vaswani et al., "Scaling
Local Self-Attention for Parameter Efficient Visual Backbones", CVPR 2021, arXiv 2103.12731) against a
literal per-pixel implementation (block + halo keys, relative position logits, padding never attended)."""

from __future__ import annotations

import torch

import litevision as lv


def test_halo_attention_matches_per_pixel_reference() -> None:
    torch.manual_seed(0)
    m = lv.create_module("halo_attention", 8, block_size=2, halo_size=1, num_heads=2).eval()
    x = torch.randn(1, 8, 5, 3)  # not a multiple of the block: padded, masked, cropped
    with torch.no_grad():
        out = m(x)
        heads, d, b, halo = 2, 4, 2, 1
        win = b + 2 * halo
        tokens = x[0].permute(1, 2, 0)  # (H, W, C)
        q = m.to_q(tokens).reshape(5, 3, heads, d)
        k, v = m.to_kv(tokens).reshape(5, 3, 2, heads, d).unbind(2)
        ref = torch.zeros(5, 3, heads * d)
        for y in range(5):
            for xx in range(3):
                by, bx = y // b * b, xx // b * b  # block origin
                keys = [(ky, kx) for ky in range(by - halo, by + b + halo) for kx in range(bx - halo, bx + b + halo)
                        if 0 <= ky < 5 and 0 <= kx < 3]  # padding is never attended
                for hd in range(heads):
                    qv = q[y, xx, hd]
                    logits = torch.stack([
                        qv @ k[ky, kx, hd] * d ** -0.5
                        + qv @ m.rel_height[ky - y + win - 1]  # relative offsets, both inside the window
                        + qv @ m.rel_width[kx - xx + win - 1]
                        for ky, kx in keys])
                    attn = logits.softmax(0)
                    ref[y, xx, hd * d:(hd + 1) * d] = sum(a * v[ky, kx, hd] for a, (ky, kx) in zip(attn, keys))
        ref = m.to_out(ref).permute(2, 0, 1)[None]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
