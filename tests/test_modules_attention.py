"""Module-specific checks for attention modules whose seed code was wrong: each module is compared with
a slow, literal implementation of its paper's formula (the contract test covers everything generic)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import litevision as lv
from litevision.modules.eca import eca_kernel_size
from litevision.modules.pyraformer import pyramid_mask, pyramid_sizes
from litevision.modules.s2_attention import SHIFT_1, spatial_shift


@pytest.mark.parametrize(("channels", "k"), [(16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (2048, 7)])
def test_eca_kernel_follows_channel_rule(channels: int, k: int) -> None:
    assert eca_kernel_size(channels) == k
    assert lv.create_module("eca", channels).conv.kernel_size == (k,)


def _pyraformer_mask_loops(length: int, window: tuple[int, ...], inner: int) -> torch.Tensor:
    """The authors' get_mask (intra-scale window on every scale, parent <-> children), True = may attend."""
    sizes = [length]
    for w in window:
        sizes.append(sizes[-1] // w)
    mask = torch.zeros(sum(sizes), sum(sizes), dtype=torch.bool)
    for s, n in enumerate(sizes):
        start = sum(sizes[:s])
        for i in range(start, start + n):
            mask[i, max(i - inner // 2, start):min(i + inner // 2 + 1, start + n)] = True
    for s in range(1, len(sizes)):
        start, prev = sum(sizes[:s]), sizes[s - 1]
        for i in range(start, start + sizes[s]):
            left = start - prev + (i - start) * window[s - 1]
            right = start if i == start + sizes[s] - 1 else left + window[s - 1]
            mask[i, left:right] = True
            mask[left:right, i] = True
    return mask


@pytest.mark.parametrize(("length", "window", "inner"), [(8, (2, 2, 2), 3), (13, (2, 2), 3), (29, (2, 3), 5)])
def test_pyraformer_mask_matches_reference_loops(length: int, window: tuple[int, ...], inner: int) -> None:
    mask = pyramid_mask(pyramid_sizes(length, window), window, inner, torch.device("cpu"))
    assert torch.equal(mask, _pyraformer_mask_loops(length, window, inner))


def test_s2_shift_moves_each_quarter_by_one_without_smearing() -> None:
    x = torch.arange(5.0)[None, :, None, None].expand(1, 5, 3, 4).clone()  # value = row index, C = 4
    out = spatial_shift(x, SHIFT_1)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 0, 1, 2, 3]))  # down: row i <- i - 1
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor([1.0, 2, 3, 4, 4]))  # up: row i <- i + 1
    torch.testing.assert_close(out[0, :, :, 2], x[0, :, :, 2])  # W shifts of a row-constant map: unchanged


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


def test_epsa_concatenates_the_scales() -> None:
    torch.manual_seed(0)
    m = lv.create_module("epsa", 32, out_channels=64).eval()
    x = torch.randn(2, 32, 9, 11)
    with torch.no_grad():
        out = m(x)
        feats = [conv(x) for conv in m.convs]
        weights = torch.stack([m.se(f) for f in feats], 1).softmax(1)
    assert [c.kernel_size[0] for c in m.convs] == [3, 5, 7, 9]
    assert [c.groups for c in m.convs] == [1, 4, 8, 16]
    for i, f in enumerate(feats):
        torch.testing.assert_close(out[:, 16 * i:16 * (i + 1)], f * weights[:, i])


def test_danet_channel_attention_is_softmax_of_the_gram_matrix() -> None:
    m = lv.create_module("danet", 16).channel
    with torch.no_grad():
        m.beta.fill_(1.0)
        a = torch.randn(2, 4, 3, 5)
        flat = a.flatten(2)
        ref = torch.softmax(flat @ flat.transpose(1, 2), -1) @ flat
        torch.testing.assert_close(m(a), ref.reshape(2, 4, 3, 5) + a)


def test_dilateformer_attends_to_dilated_neighbourhoods() -> None:
    """Perturbing a pixel changes the output only inside the union of the dilated 3x3 neighbourhoods."""
    torch.manual_seed(0)
    m = lv.create_module("dilateformer_attention", 24, num_heads=3).eval()  # one head per rate 1, 2, 3
    x = torch.randn(1, 24, 15, 15)
    x2 = x.clone()
    x2[0, :, 7, 7] += 5.0
    with torch.no_grad():
        changed = (m(x2) - m(x)).abs().sum(1)[0] > 1e-6
    expected = torch.zeros(15, 15, dtype=torch.bool)
    for r in (1, 2, 3):
        for dy in (-r, 0, r):
            for dx in (-r, 0, r):
                expected[7 + dy, 7 + dx] = True
    assert torch.equal(changed, expected)


def test_simam_closed_form_and_1x1_map() -> None:
    m = lv.create_module("simam", 4)
    x = torch.randn(2, 4, 3, 5)
    d = (x - x.mean((2, 3), keepdim=True)) ** 2
    e_inv = d / (4 * (d.sum((2, 3), keepdim=True) / (3 * 5 - 1) + 1e-4)) + 0.5
    torch.testing.assert_close(m(x), x * torch.sigmoid(e_inv))
    one = torch.randn(1, 4, 1, 1)
    torch.testing.assert_close(m(one), one * torch.sigmoid(torch.tensor(0.5)))


def test_acmix_shift_kernel_init_and_stride() -> None:
    m = lv.create_module("acmix", 16, out_channels=32, stride=2, num_heads=4)
    assert m(torch.randn(1, 16, 13, 9)).shape == (1, 32, 7, 5)
    w = m.dep_conv.weight  # (out, k*k, k, k): input group i is a one-hot at tap i
    for i in range(9):
        tap = torch.zeros(3, 3)
        tap[i // 3, i % 3] = 1.0
        assert torch.equal(w[:, i], tap.expand(32, 3, 3))
    assert math.isclose(float(m.rate1), 0.5) and math.isclose(float(m.rate2), 0.5)
