"""ResNet / SE-ResNet / CBAM-ResNet: torchvision and timm weights load and give the same outputs; the
attention option builds any plug-in module; the paper's MACs are explained by the stride placement."""

from __future__ import annotations

import pytest
import torch

import litevision as lv


def _randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights and BatchNorm statistics, so a wrong mapping cannot go unnoticed."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var") or (name.endswith("weight") and t.ndim == 1):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) / fan_in ** 0.5)
    return model.eval()


def _check_same_outputs(ours: torch.nn.Module, ref: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours.eval()(x)
    scale = expected.abs().max().clamp_min(1e-6)
    assert ((got - expected).abs().max() / scale) < 1e-4


def _tv(name: str) -> torch.nn.Module:
    import torchvision

    return getattr(torchvision.models, name)(weights=None)


def _timm(name: str, **kw) -> torch.nn.Module:
    timm = pytest.importorskip("timm")
    return timm.create_model(name, pretrained=False, **kw)


CASES = {
    "resnet18": (lambda: _tv("resnet18"), {}),
    "resnet50": (lambda: _tv("resnet50"), {}),
    "seresnet18": (lambda: _timm("seresnet18"), {"attn_rd_divisor": 8}),
    "seresnet50": (lambda: _timm("seresnet50"), {}),
    "cbam_resnet18": (lambda: _timm("resnet18", block_args={"attn_layer": "cbam"}), {}),
    "cbam_resnet50": (lambda: _timm("resnet50", block_args={"attn_layer": "cbam"}), {}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reference_weights_load_and_match(name: str) -> None:
    build_ref, kwargs = CASES[name]
    ref = _randomize(build_ref())
    ours = lv.create_model(name, **kwargs)
    lv.load_checkpoint(ours, ref.state_dict())
    _check_same_outputs(ours, ref)


def test_torchvision_keys_match_exactly() -> None:
    ours = lv.create_model("resnet18").state_dict()
    assert list(ours) == list(_tv("resnet18").state_dict())


def test_paper_seresnet18_differs_from_timm_only_in_first_stage_se() -> None:
    paper = lv.create_model("seresnet18")
    assert paper.layer1[0].attn.fc1.out_channels == 64 // 16
    assert paper.layer4[0].attn.fc1.out_channels == 512 // 16
    with pytest.raises(lv.models.CheckpointMismatchError, match="attn_rd_divisor=8"):  # the message says how
        lv.load_checkpoint(paper, _timm("seresnet18").state_dict())


def test_attention_is_after_last_bn_before_addition() -> None:
    """Zeroing the attention gate's input path must leave only the shortcut: out = relu(shortcut)."""
    model = lv.create_model("seresnet18").eval()
    block = model.layer1[0]
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        block.bn2.bias.fill_(0.5)  # were the gate before the last BN, this bias would survive it
        block.attn.fc2.bias.fill_(-1e4)  # sigmoid gate -> 0: the whole residual branch is switched off
        torch.testing.assert_close(block(x), torch.relu(x))


@pytest.mark.parametrize("attn", ["eca", "simam", "coord_attention"])
def test_any_registered_module_as_attention(attn: str) -> None:
    model = lv.create_model("resnet18", attn=attn, num_classes=5).eval()
    assert model.layer3[1].attn.module_name == attn
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    plain = lv.create_model("seresnet18", attn="none")
    assert isinstance(plain.layer1[0].attn, torch.nn.Identity)
    with pytest.raises(KeyError, match="Did you mean"):
        lv.create_model("resnet18", attn="ecaa")


def test_paper_macs_are_the_stride_in_1x1_resnet() -> None:
    """SE/CBAM papers' ResNet-50 figures (3.858/3.864 G) count the original ResNet that strides in the
    bottleneck's first 1x1 conv; ours (v1.5, torchvision/timm) strides in the 3x3 conv."""
    model = lv.create_model("cbam_resnet50")
    assert abs(lv.count_complexity(model).macs / 1e9 - 4.096) < 0.01
    for layer in (model.layer2, model.layer3, model.layer4):
        layer[0].conv1.stride, layer[0].conv2.stride = (2, 2), (1, 1)
    assert abs(lv.count_complexity(model).macs / 1e9 - 3.864) < 0.001
