"""Paper behaviour of plug-in modules (seed 004 group B) that the generic contract cannot see: literal
per-pixel references, masks, softmax axes, buffers, initialisations and operator parity."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import litevision as lv
from litevision.modules._support import PooledBatchNorm, adaptive_avg_pool2d


def _inner(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "inner", module)


# ------------------------------------------------------------------ shared helpers


@pytest.mark.parametrize("size", [(13, 29), (7, 7), (5, 3), (1, 9), (56, 40)])
def test_adaptive_pool_matrices_equal_adaptive_avg_pool(size: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    torch.testing.assert_close(adaptive_avg_pool2d(x, (7, 7)), F.adaptive_avg_pool2d(x, (7, 7)))


def test_pooled_batch_norm_trains_at_batch_one_and_matches_bn_otherwise() -> None:
    bn, ref = PooledBatchNorm(4), torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.bias.copy_(torch.arange(4.0))
        ref.load_state_dict(bn.state_dict())
    x = torch.randn(1, 4, 1, 1, requires_grad=True)
    out = bn.train()(x)
    torch.testing.assert_close(out.flatten(), torch.arange(4.0))  # single-value batch: normalised to 0
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.equal(bn.running_mean, torch.zeros(4)) and int(bn.num_batches_tracked) == 0
    x2 = torch.randn(3, 4, 1, 1)
    torch.testing.assert_close(bn(x2), ref.train()(x2))


# ------------------------------------------------------------------ A2 (double attention)


def test_double_attention_softmax_axes_match_the_paper() -> None:
    """Gather: softmax over positions; distribute: softmax over the c_n descriptors (never the batch)."""
    m = lv.create_module("double_attention", 16, residual=False).double().eval()
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        a = m.conv_a(x).flatten(2)  # (N, c_m, L)
        b = m.conv_b(x).flatten(2)
        v = m.conv_v(x).flatten(2)
        ref = torch.zeros(2, m.c_m, 30, dtype=torch.float64)
        for n in range(2):
            g = torch.stack([(a[n] * torch.softmax(b[n, i], dim=0)).sum(-1) for i in range(m.c_n)], dim=1)
            for j in range(30):
                ref[n, :, j] = g @ torch.softmax(v[n, :, j], dim=0)
        ref = m.reconstruct(ref.view(2, m.c_m, 5, 6))
        torch.testing.assert_close(m(x), ref)


# ------------------------------------------------------------------ CCNet


def test_criss_cross_attention_matches_literal_row_column_softmax() -> None:
    m = lv.create_module("criss_cross_attention", 16, recurrence=1).double().eval()
    with torch.no_grad():
        m.gamma.fill_(0.7)
    x = torch.randn(2, 16, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = m.query(x), m.key(x), m.value(x)
        ref = torch.empty_like(x)
        for n in range(2):
            for i in range(4):
                for j in range(5):
                    # column keys without the pixel itself, then the whole row (the pixel once)
                    keys = [(r, j) for r in range(4) if r != i] + [(i, c) for c in range(5)]
                    e = torch.stack([q[n, :, i, j] @ k[n, :, r, c] for r, c in keys])
                    a = torch.softmax(e, dim=0)
                    ref[n, :, i, j] = sum(a[t] * v[n, :, r, c] for t, (r, c) in enumerate(keys))
        torch.testing.assert_close(m(x), 0.7 * ref + x)


def test_criss_cross_reaches_everything_only_with_two_passes() -> None:
    x = torch.randn(1, 16, 6, 6)
    for recurrence, expect_far in ((1, False), (2, True)):
        m = lv.create_module("criss_cross_attention", 16, recurrence=recurrence).eval()
        with torch.no_grad():
            m.gamma.fill_(1.0)
            x2 = x.clone()
            x2[0, :, 5, 5] += 3.0  # not in row 0 / column 0
            changed = (m(x2) - m(x))[0, :, 0, 0].abs().max() > 1e-6
        assert bool(changed) == expect_far


# ------------------------------------------------------------------ FcaNet


def test_fcanet_dct_filters_are_buffers_and_orthonormal() -> None:
    m = lv.create_module("fcanet", 32)
    assert "dct_filter" in dict(m.named_buffers()) and "dct_filter" in m.state_dict()
    assert not any(p is m.dct_filter for p in m.parameters())
    m = m.double()
    assert m.dct_filter.dtype == torch.float64
    basis = m.dct_filter[::2].flatten(1)  # one filter per frequency group (32 channels / 16 freqs)
    torch.testing.assert_close(basis @ basis.T, torch.eye(16, dtype=torch.float64), atol=1e-6, rtol=0)
    # frequency (0, 0) is the GAP direction: constant 1/7 on the 7x7 grid
    torch.testing.assert_close(m.dct_filter[0], torch.full((7, 7), 1 / 7, dtype=torch.float64), atol=1e-7, rtol=0)


def test_fcanet_any_size_pools_to_the_dct_grid() -> None:
    m = lv.create_module("fcanet", 32).double().eval()
    x = torch.randn(2, 32, 23, 10, dtype=torch.float64)
    y = (F.adaptive_avg_pool2d(x, 7) * m.dct_filter).sum((2, 3))
    torch.testing.assert_close(m(x), x * m.fc(y).view(2, 32, 1, 1))


# ------------------------------------------------------------------ snake conv / DCNv2


def test_snake_offsets_accumulate_from_the_centre() -> None:
    from litevision.modules.snake_conv import snake_offsets

    off = torch.randn(2, 9, 3, 4)
    acc = snake_offsets(off)
    assert torch.equal(acc[:, 4], torch.zeros_like(acc[:, 4]))
    for i in range(1, 5):
        torch.testing.assert_close(acc[:, 4 + i], off[:, 5:5 + i].sum(1))
        torch.testing.assert_close(acc[:, 4 - i], off[:, 4 - i:4].sum(1))


def test_snake_conv_without_offsets_is_a_1xk_conv_and_keeps_samples_apart() -> None:
    m = lv.create_module("dynamic_snake_conv", 8, morph="x", kernel_size=5).double().eval()
    snake = m.snake
    with torch.no_grad():
        snake.offset_conv.weight.zero_()
        snake.offset_conv.bias.zero_()
    x = torch.randn(3, 8, 6, 7, dtype=torch.float64)
    w = snake.conv.weight.view(snake.conv.out_channels, 8, 1, 5)  # (O, C*K) -> (O, C, 1, K)
    ref = snake.act(snake.norm(F.conv2d(x, w, snake.conv.bias, padding=(0, 2))))
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref)
        # random offsets: sample 1 must not see sample 0 (the seed's gather read sample 0 for everyone)
        snake.offset_conv.weight.normal_()
        x2 = x.clone()
        x2[0] = 100 * torch.randn_like(x2[0])
        torch.testing.assert_close(m(x2)[1:], m(x)[1:])
        torch.testing.assert_close(m(x[1:2]), m(x)[1:2])


def test_deform_conv_reference_matches_torchvision_forward_and_backward() -> None:
    from torchvision.ops import deform_conv2d

    from litevision.modules.deform_conv import deform_conv2d_reference

    torch.manual_seed(0)
    for n, c, h, w, out, stride, dil, groups, og in ((2, 8, 9, 11, 16, 1, 1, 1, 1), (2, 8, 7, 6, 8, 2, 2, 2, 2)):
        pad = dil
        ho, wo = (h + 2 * pad - 2 * dil - 1) // stride + 1, (w + 2 * pad - 2 * dil - 1) // stride + 1
        args = [torch.randn(n, c, h, w), 2 * torch.randn(n, 2 * og * 9, ho, wo), torch.rand(n, og * 9, ho, wo),
                torch.randn(out, c // groups, 3, 3), torch.randn(out)]
        args = [a.double().requires_grad_() for a in args]
        x, off, mask, weight, bias = args
        a = deform_conv2d(x, off, weight, bias, stride=stride, padding=pad, dilation=dil, mask=mask)
        r = deform_conv2d_reference(x, off, mask, weight, bias, stride, pad, dil)
        torch.testing.assert_close(r, a)
        for ga, gr in zip(torch.autograd.grad(a.sum(), args), torch.autograd.grad(r.sum(), args), strict=True):
            torch.testing.assert_close(gr, ga)


def test_deform_conv_starts_as_half_a_regular_conv() -> None:
    """Zero-initialised offset branch: dp = 0 and dm = sigmoid(0) = 0.5 (DCNv2 initialisation)."""
    m = lv.create_module("deform_conv_v2", 8, out_channels=12, stride=2).eval()
    x = torch.randn(2, 8, 9, 10)
    with torch.no_grad():
        ref = 0.5 * F.conv2d(x, m.weight, None, stride=2, padding=1) + m.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(m(x), ref)


# ------------------------------------------------------------------ BiFormer / AFT / UFO / ViP


@pytest.mark.parametrize("size", [(14, 14), (13, 10)])
def test_biformer_with_all_regions_routed_is_full_attention(size: tuple[int, int]) -> None:
    """topk = every region: BRA == global multi-head attention (+ LCE), padding masked out exactly."""
    m = lv.create_module("biformer_attention", 32, num_heads=2, n_win=7, topk=49).double().eval()
    x = torch.randn(2, 32, *size, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = m.qkv(x).chunk(3, dim=1)
        heads = [t.reshape(2, 2, 16, -1) for t in (q, k, v)]  # (N, m, d, HW)
        attn = (heads[0].transpose(-1, -2) * m.scale) @ heads[1]  # (N, m, HW, HW)
        out = (attn.softmax(-1) @ heads[2].transpose(-1, -2)).transpose(-1, -2).reshape(2, 32, *size)
        torch.testing.assert_close(m(x), m.proj(out + m.lepe(v)))


def test_biformer_token_attention_sees_only_the_routed_regions() -> None:
    m = lv.create_module("biformer_attention", 16, num_heads=2, n_win=4, topk=2).double().eval()
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = m.qkv(x).chunk(3, dim=1)
        region = lambda i, j: (i // 2) * 4 + j // 2  # noqa: E731  2x2 regions on a 4x4 grid
        q_r = F.avg_pool2d(q, 2).flatten(2)[0].T  # (16, C)
        k_r = F.avg_pool2d(k, 2).flatten(2)[0]  # (C, 16)
        routed = torch.topk(q_r @ k_r, 2, dim=-1).indices  # (16, 2)
        out = torch.empty_like(q)
        for i in range(8):
            for j in range(8):
                keys = [(a, b) for a in range(8) for b in range(8) if region(a, b) in routed[region(i, j)].tolist()]
                for h in range(2):
                    sl = slice(8 * h, 8 * h + 8)
                    e = torch.stack([q[0, sl, i, j] @ k[0, sl, a, b] for a, b in keys]) * m.scale
                    att = e.softmax(0)
                    out[0, sl, i, j] = sum(att[t] * v[0, sl, a, b] for t, (a, b) in enumerate(keys))
        torch.testing.assert_close(m(x), m.proj(out + m.lepe(v)))


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


# ------------------------------------------------------------------ conv modules


def test_mtgnn_temporal_conv_is_causal() -> None:
    m = lv.create_module("mtgnn_temporal_conv", 8, dilation=2).eval()
    x = torch.randn(1, 8, 3, 20)
    x2 = x.clone()
    x2[..., 12:] = torch.randn_like(x2[..., 12:])
    with torch.no_grad():
        torch.testing.assert_close(m(x2)[..., :12], m(x)[..., :12])
        assert not torch.allclose(m(x2)[..., 12:], m(x)[..., 12:])


def test_dilated_context_identity_init_and_receptive_field() -> None:
    m = lv.create_module("dilated_context", 4).double().eval()
    x = torch.rand(1, 4, 80, 80, dtype=torch.float64)  # positive input and weights: no ReLU blocks a path
    with torch.no_grad():
        torch.testing.assert_close(m(x - 0.5), torch.relu(x - 0.5))  # identity initialisation
        for layer in m.layers:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.add_(0.1)
        base = m(x)
        for dist, reaches in ((33, True), (34, False)):  # receptive field 67 x 67
            x2 = x.clone()
            x2[0, :, 40 + dist, 40] += 5.0
            assert bool((m(x2) - base)[0, :, 40, 40].abs().max() > 0) == reaches


def test_scconv_sru_gates_follow_the_paper() -> None:
    from litevision.modules.scconv import SRU

    sru = SRU(8, group_num=4).double()
    with torch.no_grad():
        sru.gn.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    gn_x = sru.gn(x)
    wts = torch.sigmoid(gn_x * (sru.gn.weight / sru.gn.weight.sum()).view(1, -1, 1, 1))
    hi = wts > 0.5
    x1 = torch.where(hi, 1.0, wts) * x
    x2 = torch.where(hi, 0.0, wts) * x
    ref = torch.cat([x1[:, :4] + x2[:, 4:], x1[:, 4:] + x2[:, :4]], dim=1)
    torch.testing.assert_close(sru(x), ref)


def test_shuffle_attention_group_fallback_and_explicit_error() -> None:
    assert lv.create_module("shuffle_attention", 24).groups == 6
    with pytest.raises(ValueError, match="divisible"):
        lv.create_module("shuffle_attention", 24, groups=8)


def test_split_attention_radix_softmax_sums_to_one() -> None:
    m = lv.create_module("split_attention", 32, groups=2).eval()
    captured = {}
    m.fc2.register_forward_hook(lambda mod, inp, out: captured.__setitem__("attn", out))
    with torch.no_grad():
        m(torch.randn(2, 32, 5, 7))
    attn = captured["attn"].reshape(2, 2, 2, -1).transpose(1, 2).softmax(dim=1)  # (N, radix, G, C/G)
    torch.testing.assert_close(attn.sum(1), torch.ones_like(attn.sum(1)))
    assert math.isclose(float(m(torch.randn(1, 32, 4, 4)).shape[1]), 32)


# ------------------------------------------------------------------ STViT


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


# ------------------------------------------------------------------ EMO iRMB


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
