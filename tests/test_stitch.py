"""Stitching plug-in modules into registered models: the stitched model still honours the model contract
(head, feature_info, features-only, every parameter trained, state dict, fuse, trace)."""

from __future__ import annotations

import copy

import pytest
import torch

import litevision as lv
from litevision.errors import UserError
from litevision.models import FeatureExtractor
from litevision.modules.stitch import Stitched, resolve_targets, stitch

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace deprecation

RESNETS = [pytest.param(n, marks=pytest.mark.slow) if n == "resnet50" else n
           for n in ("resnet18", "resnet50") if n in lv.list_models()]


def _check_model_contract(model: torch.nn.Module, shape: tuple[int, ...] = (2, 3, 64, 48)) -> None:
    """The generic model contract (as tests/test_models_contract.py) for an already-built model."""
    x = torch.randn(shape)
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
        torch.testing.assert_close(model(x), logits)
        assert model.forward_head(feats, pre_logits=True).shape == (shape[0], model.num_features)
        outs = model.forward_intermediates(x)
    assert [o.shape[1] for o in outs] == [f["num_chs"] for f in model.feature_info]
    extractor = FeatureExtractor(copy.deepcopy(model))
    with torch.no_grad():
        assert [o.shape[1] for o in extractor(x)] == extractor.channels()
    model.train()
    model(x).logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        ref = model(x)
        fused = lv.fuse_model(copy.deepcopy(model))
        assert (fused(x) - ref).abs().max() / ref.abs().max().clamp_min(1.0) < 1e-4
        traced = torch.jit.trace(fused, x, check_trace=False)
        torch.testing.assert_close(traced(x), fused(x), rtol=1e-4, atol=1e-4)


def _build(name: str) -> torch.nn.Module:
    return lv.create_model(name, num_classes=5)


@pytest.mark.parametrize(("module", "where"), [("eca", "stages"), ("simam", "blocks"),
                                               ("coord_attention", ["stages.3.*", "neck"])])
def test_stitch_into_mobilenetv2_keeps_contract_and_keys(module: str, where) -> None:
    model = _build("mobilenetv2_100")
    keys = set(model.state_dict())
    info = copy.deepcopy(model.feature_info)
    out = stitch(model, module, where=where)
    assert out is model and model.feature_info == info
    assert model.stitched and all(r["module"] == module for r in model.stitched)
    if module != "coord_attention":  # inside plain Sequentials: no existing key moves
        assert keys <= set(model.state_dict())
    n_targets = len(resolve_targets(_build("mobilenetv2_100"), where))
    assert len(model.stitched) == n_targets
    _check_model_contract(model)


def test_stitched_params_are_the_inserted_modules() -> None:
    base = _build("mobilenetv2_100")
    model = stitch(_build("mobilenetv2_100"), "eca", where="stages")
    added = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in base.parameters())
    expected = sum(sum(p.numel() for p in lv.create_module("eca", f["num_chs"]).parameters())
                   for f in base.feature_info)
    assert added == expected


def test_wrapper_path_and_state_dict_round_trip() -> None:
    """The neck is no Sequential and has no Sequential parent: it gets a Stitched wrapper."""
    model = stitch(_build("mobilenetv2_100"), "se", where="neck")
    assert isinstance(model.neck, Stitched)
    clone = stitch(_build("mobilenetv2_100"), "se", where="neck").eval()
    clone.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model.eval()(x))
    _check_model_contract(model)


def test_stitch_with_factory_and_features_only_model() -> None:
    feats = lv.create_model("mobilenetv2_100", features_only=True, out_indices=(1, 3))
    stitch(feats, lambda c: lv.create_module("triplet_attention", c), where="stages")
    with torch.no_grad():
        outs = feats(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == feats.channels()


@pytest.mark.parametrize("name", RESNETS)
def test_stitch_into_resnet(name: str) -> None:
    model = stitch(_build(name), "eca", where="blocks")
    _check_model_contract(model)


@pytest.mark.parametrize("name", ["shufflenetv2_100", pytest.param("lsnet_t", marks=pytest.mark.slow)])
def test_stitch_into_other_layouts(name: str) -> None:
    if name not in lv.list_models():
        pytest.skip(f"{name} not registered")
    model = stitch(_build(name), "eca", where="stages")
    _check_model_contract(model)


def test_stitch_errors_are_clear() -> None:
    model = _build("mobilenetv2_100")
    with pytest.raises(UserError, match="Did you mean"):
        stitch(model, "eca", where="stages.9x")
    with pytest.raises(ValueError, match="preserve the shape"):
        stitch(model, "epsa", where="stages", out_channels=8)
    with pytest.raises(UserError, match="unknown module"):
        stitch(model, "not_a_module", where="stages")


def test_create_model_stitch_option_and_round_trip() -> None:
    specs = [{"module": "eca", "where": "stages"}, ("simam", ["stages.1.*"])]
    model = lv.create_model("mobilenetv2_050", num_classes=3, stitch=specs).eval()
    assert [r["module"] for r in model.stitched][:1] == ["eca"] and model.stitched[-1]["module"] == "simam"
    clone = lv.create_model("mobilenetv2_050", num_classes=3, stitch=specs).eval()
    lv.load_checkpoint(clone, model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x))
    with pytest.raises(UserError, match="expected keys"):
        lv.create_model("mobilenetv2_050", stitch=[{"module": "eca", "were": "stages"}])
