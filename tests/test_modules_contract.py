"""The plug-in module contract, checked for every registered module (a new module needs no new test).

Contract (``litevision/modules/_registry.py``): NCHW in / out, ``out_channels`` and ``stride`` declared,
shape-preserving by default, any H x W at or above ``card.min_size`` that is a multiple of
``card.divisor`` (other sizes raise a clear ``ValueError``), batch 1 trains, a sample's output does not
depend on its batch-mates, the input is never modified, every parameter is trained, float64 and
bfloat16 run, state dicts round-trip, and the formats in ``card.export`` reproduce the eager output
(ONNX checked with onnxruntime at the export size and, for ``dynamic_size`` modules, at a second size).

Channels: C = 32 for the small shapes and 64 for the large one, unless a card lists
``extra["test_channels"] = (small, large)``.
"""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch

import litevision as lv
from litevision.modules._registry import ADAPTERS, CATEGORIES, EXPORT_FORMATS, REF_CHANNELS, REF_SIZE

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace deprecation

ALL_MODULES = lv.list_modules()

# (batch, which channel count, H, W): odd, non-square, tiny and large maps
BATTERY = ((1, 0, 13, 29), (2, 0, 7, 7), (2, 1, 56, 40))


def _card(name: str):
    return lv.get_module_card(name)


def _channels(name: str) -> tuple[int, int]:
    return tuple(_card(name).extra.get("test_channels", (32, 64)))  # type: ignore[return-value]


def _valid(name: str, h: int, w: int) -> bool:
    card = _card(name)
    return min(h, w) >= card.min_size and h % card.divisor == 0 and w % card.divisor == 0


def _min_hw(name: str) -> int:
    card = _card(name)
    return card.divisor * math.ceil(card.min_size / card.divisor)


def _small_shape(name: str, batch: int = 1) -> tuple[int, int, int, int]:
    """The first valid small battery shape, else the declared minimum (non-square when possible)."""
    c = _channels(name)[0]
    for _, _, h, w in BATTERY[:2]:
        if _valid(name, h, w):
            return (batch, c, h, w)
    m = _min_hw(name)
    return (batch, c, m, m + _card(name).divisor)


def _build(name: str, channels: int, **kw) -> torch.nn.Module:
    return lv.create_module(name, channels, **kw)


def _randomize_norm_stats(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def _close(out: torch.Tensor, ref: torch.Tensor, tol: float) -> bool:
    scale = ref.abs().max().clamp_min(1.0)
    return bool(((out - ref).abs().max() / scale) < tol)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_shapes_and_declared_sizes(name: str) -> None:
    card = _card(name)
    small_c, large_c = _channels(name)
    module = _build(name, small_c).eval()
    assert module.out_channels == small_c and module.stride == 1, "default must be shape-preserving"
    large = _build(name, large_c).eval()
    shapes = [(b, (small_c, large_c)[ci], h, w) for b, ci, h, w in BATTERY]
    m = _min_hw(name)
    shapes.append((1, small_c, m, m + card.divisor))
    for shape in shapes:
        mod = module if shape[1] == small_c else large
        x = torch.randn(shape)
        x_copy = x.clone()
        if not _valid(name, *shape[2:]):
            with pytest.raises(ValueError):
                mod(x)
            continue
        with torch.no_grad():
            out = mod(x)
        assert out.shape == shape, f"{name}: {tuple(out.shape)} for input {shape}"
        assert out.dtype == x.dtype
        assert torch.isfinite(out).all(), f"{name}: non-finite output at {shape}"
        assert torch.equal(x, x_copy), f"{name}: the input was modified in place"
    if card.min_size > 1:
        # one below the declared minimum on H or on W: a clear ValueError (modules whose minimum binds one
        # axis only, e.g. time-series modules reading rows, may accept the other), never another exception
        raised = 0
        for hw in ((card.min_size - 1, m), (m, card.min_size - 1)):
            try:
                with torch.no_grad():
                    out = module(torch.randn(1, small_c, *hw))
            except ValueError:
                raised += 1
                continue
            assert out.shape == (1, small_c, *hw)
        assert raised, f"{name}: no ValueError below min_size={card.min_size}"
    if card.divisor > 1:
        with pytest.raises(ValueError):
            module(torch.randn(1, small_c, m + 1, m))


@pytest.mark.parametrize("name", ALL_MODULES)
def test_out_channels_and_stride_options(name: str) -> None:
    """Non-default ``out_channels`` / ``stride``: either supported (right shape) or a ValueError."""
    c = _channels(name)[0]
    shape = _small_shape(name)
    for kw, expect in (({"out_channels": 2 * c}, None), ({"stride": 2}, 2)):
        try:
            module = _build(name, c, **kw).eval()
        except ValueError:
            continue
        assert module.out_channels == kw.get("out_channels", c) and module.stride == kw.get("stride", 1)
        with torch.no_grad():
            out = module(torch.randn(shape))
        s = expect or 1
        assert out.shape == (1, module.out_channels, -(-shape[2] // s), -(-shape[3] // s)), (kw, out.shape)
    with pytest.raises(TypeError):
        _build(name, c, definitely_not_an_argument=1)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_batch1_training_reaches_every_parameter(name: str) -> None:
    shape = _small_shape(name)
    module = _build(name, shape[1]).train()
    x = torch.randn(shape, requires_grad=True)
    x_copy = x.detach().clone()
    out = module(x)
    (out * torch.randn_like(out)).sum().backward()
    assert torch.equal(x.detach(), x_copy), f"{name}: the input was modified in place"
    assert x.grad is not None and torch.isfinite(x.grad).all()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: parameters without gradient: {missing[:5]}"
    bad = [n for n, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradients: {bad[:5]}"


@pytest.mark.parametrize("name", ALL_MODULES)
def test_samples_do_not_see_batch_mates(name: str) -> None:
    shape = _small_shape(name, batch=3)
    module = _build(name, shape[1]).eval()
    _randomize_norm_stats(module)
    x = torch.randn(shape)
    other = x.clone()
    other[1:] = 10 * torch.randn_like(other[1:])
    with torch.no_grad():
        alone = module(x[:1])
        with_mates = module(x)
        with_others = module(other)
    torch.testing.assert_close(with_mates[:1], alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(with_others[:1], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_float64_and_bfloat16(name: str) -> None:
    shape = _small_shape(name, batch=2)
    module = _build(name, shape[1]).eval()
    _randomize_norm_stats(module)
    x = torch.randn(shape)
    with torch.no_grad():
        ref = module(x)
        out64 = module.double()(x.double())
        assert out64.dtype == torch.float64
        assert _close(out64.float(), ref, 1e-3), f"{name}: float64 disagrees with float32"
        out16 = module.bfloat16()(x.bfloat16())
    assert out16.dtype == torch.bfloat16 and out16.shape == ref.shape
    assert torch.isfinite(out16).all(), f"{name}: bfloat16 output is not finite"
    rel = (out16.float() - ref).abs().mean() / ref.abs().mean().clamp_min(1e-6)
    assert rel < 0.1, f"{name}: bfloat16 mean relative error {float(rel):.3f}"


@pytest.mark.parametrize("name", ALL_MODULES)
def test_state_dict_round_trip(name: str) -> None:
    shape = _small_shape(name, batch=2)
    module = _build(name, shape[1])
    _randomize_norm_stats(module)
    module.eval()
    x = torch.randn(shape)
    with torch.no_grad():
        ref = module(x)
    torch.manual_seed(1)
    clone = _build(name, shape[1]).eval()
    clone.load_state_dict(module.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(clone(x), ref)
    assert all(isinstance(v, torch.Tensor) for v in module.state_dict().values())


@pytest.mark.parametrize("name", ALL_MODULES)
def test_torchscript_or_torch_export(name: str) -> None:
    card = _card(name)
    if not {"torchscript", "torch.export"} & set(card.export):
        pytest.skip(f"{name} declares no TorchScript / torch.export support: {card.export}")
    shape = _small_shape(name, batch=2)
    module = _build(name, shape[1]).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        ref = module(x)
        if "torchscript" in card.export:
            traced = torch.jit.trace(module, x, check_trace=False)
            torch.testing.assert_close(traced(x), ref, rtol=1e-4, atol=1e-4)
        if "torch.export" in card.export:
            program = torch.export.export(module, (x,))
            torch.testing.assert_close(program.module()(x), ref, rtol=1e-4, atol=1e-4)


def _second_shape(name: str, first: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A valid shape other than ``first`` (batch, H and W all differ where the card allows)."""
    card = _card(name)
    d = card.divisor
    h = max(_min_hw(name), d * math.ceil(17 / d))
    w = max(_min_hw(name), d * math.ceil(11 / d))
    if (h, w) == tuple(first[2:]):
        h += d
    return (first[0] + 1, first[1], h, w)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_onnx_matches_eager(name: str) -> None:
    card = _card(name)
    if "onnx" not in card.export:
        pytest.skip(f"{name} declares no ONNX support: {card.export}")
    import onnxruntime as ort

    shape = _small_shape(name)
    module = _build(name, shape[1]).eval()
    _randomize_norm_stats(module)
    x = torch.randn(shape)
    axes = {0: "batch", 2: "height", 3: "width"} if card.dynamic_size else {0: "batch"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": axes, "y": axes}, opset_version=17)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    shapes = [shape]
    if card.dynamic_size:
        shapes.append(_second_shape(name, shape))
    for s in shapes:
        xs = torch.randn(s)
        with torch.no_grad():
            ref = module(xs)
        (out,) = session.run(None, {"x": xs.numpy()})
        assert _close(torch.from_numpy(out), ref, 1e-4), f"{name}: ONNX output differs at {s}"


# ---------------------------------------------------------------- metadata


@pytest.mark.parametrize("name", ALL_MODULES)
def test_card_is_complete_and_measured(name: str) -> None:
    card = _card(name)
    assert card.paper and card.venue and 1990 < card.year < 2100
    assert card.paper_url.startswith("http"), "paper_url missing"
    assert card.category in CATEGORIES
    assert 1 <= card.seed_section <= 45
    assert card.min_size >= 1 and card.divisor >= 1
    assert set(card.export) <= set(EXPORT_FORMATS), card.export
    assert card.adapter is None or card.adapter in ADAPTERS
    assert isinstance(card.deviations_fixed, tuple) and all(isinstance(d, str) for d in card.deviations_fixed)
    cplx = lv.count_complexity(_build(name, REF_CHANNELS), (REF_CHANNELS, *REF_SIZE))
    hint = f"measured: ref_params={cplx.params}, ref_macs={cplx.macs}"
    assert card.ref_params == cplx.params, hint
    assert card.ref_macs is not None and abs(card.ref_macs - cplx.macs) <= 0.01 * max(cplx.macs, 1), hint


def test_every_seed_section_has_a_module() -> None:
    """Seed 004 has 45 sections; 15 repeats 8 (CoTAttention), every other one is a module."""
    covered = {_card(n).seed_section for n in ALL_MODULES}
    missing = sorted(set(range(1, 46)) - {15} - covered)
    assert not missing, f"seed sections without a module: {missing}"
    assert 15 not in covered, "section 15 repeats section 8: register CoTAttention once (section 8)"
