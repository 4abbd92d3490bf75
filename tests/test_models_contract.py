"""The model contract, checked for every registered model (a new model needs no new test)."""

from __future__ import annotations

import copy

import pytest
import torch

import litevision as lv
from litevision.models import get_model_card

ALL_MODELS = lv.list_models(task="classification")  # detectors: test_detection_contract.py


def _is_heavy(name: str) -> bool:
    card = get_model_card(name)
    return (card.figures.macs_g or 0) > 2.0 or (card.figures.params_m or 0) > 30 or card.extra.get("heavy", False)


def _params(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if _is_heavy(n) else n for n in names]


def _sizes(name: str) -> list[tuple[int, ...]]:
    """Two input shapes per model: square batch 2 and non-square batch 1 (card may override)."""
    card = get_model_card(name)
    if "test_sizes" in card.extra:
        return [tuple(s) for s in card.extra["test_sizes"]]
    c = card.input_size[0]
    return [(2, c, 96, 96), (1, c, 112, 80)]


def _build(name: str, **kw) -> torch.nn.Module:
    return lv.create_model(name, num_classes=kw.pop("num_classes", 7), **kw)


@pytest.mark.parametrize("name", _params(ALL_MODELS))
def test_forward_shapes_and_head(name: str) -> None:
    model = _build(name).eval()
    for shape in _sizes(name):
        x = torch.randn(shape)
        with torch.no_grad():
            feats = model.forward_features(x)
            logits = model.forward_head(feats)
            pre = model.forward_head(feats, pre_logits=True)
            full = model(x)
        assert logits.shape == (shape[0], 7)
        assert pre.shape == (shape[0], model.num_features)
        torch.testing.assert_close(full, logits)
        assert torch.isfinite(full).all()
    model.reset_classifier(0)
    with torch.no_grad():
        out = model(torch.randn(_sizes(name)[0]))
    assert out.shape == (_sizes(name)[0][0], model.num_features)
    model.reset_classifier(3)
    with torch.no_grad():
        assert model(torch.randn(_sizes(name)[0])).shape[-1] == 3
    assert model.num_classes == 3


@pytest.mark.parametrize("name", _params(ALL_MODELS))
def test_backward_reaches_every_parameter(name: str) -> None:
    model = _build(name, drop_rate=0.1).train()
    shape = _sizes(name)[0]
    model(torch.randn(shape)).logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("name", _params(ALL_MODELS))
def test_in_chans_and_num_classes(name: str) -> None:
    card = get_model_card(name)
    if card.extra.get("fixed_in_chans"):
        pytest.skip("input channels are fixed by the data (documented in the card)")
    model = _build(name, in_chans=1, num_classes=5).eval()
    shape = (1, 1, *_sizes(name)[0][2:])
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == (1, 5)
    assert model.in_chans == 1


@pytest.mark.parametrize("name", _params(ALL_MODELS))
def test_features_only_matches_feature_info(name: str) -> None:
    model = _build(name)
    info = model.feature_info
    assert info, "feature_info is empty"
    feats = lv.create_model(name, features_only=True).eval()
    shape = _sizes(name)[0]
    with torch.no_grad():
        outs = feats(torch.randn(shape))
    assert len(outs) == len(info)
    # models with unpadded, unstrided convs (HybridSN) list their stage sizes for the first test input
    sizes = get_model_card(name).extra.get("feature_sizes")
    for i, (out, f) in enumerate(zip(outs, info)):
        assert out.shape[1] == f["num_chs"], f
        if sizes is not None:
            assert tuple(out.shape[2:]) == tuple(sizes[i]), (out.shape, sizes[i])
        elif out.ndim == 4:
            expected = -(-shape[-1] // f["reduction"])
            assert abs(out.shape[-1] - expected) <= 1, (out.shape, f)
    last = lv.create_model(name, features_only=True, out_indices=(-1,)).eval()
    with torch.no_grad():
        assert last(torch.randn(shape))[0].shape[1] == info[-1]["num_chs"]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_unknown_kwarg_raises(name: str) -> None:
    with pytest.raises(TypeError):
        lv.create_model(name, definitely_not_an_argument=1)


@pytest.mark.parametrize("name", _params(ALL_MODELS))
def test_state_dict_round_trip_and_fuse(name: str) -> None:
    model = _build(name)
    # give BatchNorms non-trivial statistics so fusion is really exercised
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(_sizes(name)[0])
    with torch.no_grad():
        ref = model(x)
    clone = _build(name).eval()
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(clone(x), ref)
    fused = lv.fuse_model(copy.deepcopy(model))
    with torch.no_grad():
        out = fused(x)
    scale = ref.abs().max().clamp_min(1.0)
    assert (out - ref).abs().max() / scale < 1e-4


@pytest.mark.parametrize("name", _params(ALL_MODELS))
def test_channels_last_gives_the_same_outputs(name: str) -> None:
    if len(get_model_card(name).input_size) != 3:
        pytest.skip("not a 2-D image model (channels-last is a 4-D layout)")
    model = _build(name).eval()
    x = torch.randn(_sizes(name)[0])
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", _params(ALL_MODELS))
def test_torchscript_trace(name: str) -> None:
    model = lv.fuse_model(_build(name))
    x = torch.randn(_sizes(name)[0])
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
        torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-4)
