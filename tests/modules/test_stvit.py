"""Reference check for ``src/litevision/modules/stvit.py``: Super Token Attention of STViT (Huang et al., "Vision
Transformer with Super Token Sampling", CVPR 2023, arXiv 2211.11167) against a per-pixel soft k-means,
MHSA and upsampling reference, with padded pixels taking no part."""

from __future__ import annotations

import pytest
import torch

import litevision as lv


@pytest.mark.parametrize("size", [(8, 12), (7, 10)])
def test_super_token_attention_matches_a_per_pixel_reference(size: tuple[int, int]) -> None:
    """Soft k-means over the 3x3 neighbouring super tokens (2 rounds), MHSA, per-pixel upsampling; padded
    pixels (7 x 10 with 4 x 4 cells) take no part."""
    m = lv.create_module("stoken_attention", 8, stoken_size=(4, 4), n_iter=2, num_heads=2).double().eval()
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    n, c, h, w = x.shape
    hh, ww = -(-h // 4), -(-w // 4)
    cells = [[[(y, z) for y in range(4 * i, min(4 * i + 4, h)) for z in range(4 * j, min(4 * j + 4, w))]
              for j in range(ww)] for i in range(hh)]
    offsets = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]

    def neigh(s: torch.Tensor, b: int, i: int, j: int) -> torch.Tensor:  # (C, 9), zeros outside
        return torch.stack([s[b, :, i + di, j + dj] if 0 <= i + di < hh and 0 <= j + dj < ww
                            else torch.zeros(c, dtype=x.dtype) for di, dj in offsets], 1)

    def affinity(s: torch.Tensor) -> torch.Tensor:
        a = torch.zeros(n, h, w, 9, dtype=x.dtype)
        for b in range(n):
            for y in range(h):
                for z in range(w):
                    a[b, y, z] = torch.softmax(x[b, :, y, z] @ neigh(s, b, y // 4, z // 4) * c ** -0.5, 0)
        return a

    def update(a: torch.Tensor) -> torch.Tensor:
        num, den = torch.zeros(n, c, hh, ww, dtype=x.dtype), torch.zeros(n, 1, hh, ww, dtype=x.dtype)
        for b in range(n):
            for y in range(h):
                for z in range(w):
                    for t, (di, dj) in enumerate(offsets):
                        i, j = y // 4 + di, z // 4 + dj
                        if 0 <= i < hh and 0 <= j < ww:
                            num[b, :, i, j] += a[b, y, z, t] * x[b, :, y, z]
                            den[b, 0, i, j] += a[b, y, z, t]
        return num / (den + 1e-12)

    with torch.no_grad():
        s = torch.stack([torch.stack([torch.stack([x[:, :, y, z] for y, z in cells[i][j]]).mean(0)
                                      for j in range(ww)], -1) for i in range(hh)], -2)  # (N, C, hh, ww)
        for _ in range(2):
            a = affinity(s)
            s = update(a)
        s = m.stoken_refine(s)
        ref = torch.zeros_like(x)
        for b in range(n):
            for y in range(h):
                for z in range(w):
                    ref[b, :, y, z] = neigh(s, b, y // 4, z // 4) @ a[b, y, z]
        torch.testing.assert_close(m(x), ref)
