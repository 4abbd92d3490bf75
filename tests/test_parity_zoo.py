"""Reference parity for the classic zoo: torchvision / timm models of the same architecture, with random
weights and random BatchNorm statistics, load into ours through ``lv.load_checkpoint`` and give the same eval
outputs. ShuffleNetV1 has no reference implementation: its widths are checked against the paper's Table 1."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import litevision as lv


def _tv(name: str, **kwargs) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kwargs)

    return build


def _timm(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        timm = pytest.importorskip("timm")
        return timm.create_model(name, pretrained=False)

    return build


# (our model, reference builder, overrides needed for the reference's conventions)
CASES: list[tuple[str, Callable[[], nn.Module], dict]] = [
    ("mobilenetv1_100", _timm("mobilenetv1_100"), {}),
    ("mobilenetv2_100", _tv("mobilenet_v2"), {}),
    ("mobilenetv2_100", _timm("mobilenetv2_100"), {}),
    ("mobilenetv3_large_100", _tv("mobilenet_v3_large"), {}),
    ("mobilenetv3_small_100", _tv("mobilenet_v3_small"), {}),
    ("mobilenetv3_large_100", _timm("mobilenetv3_large_100"), {"bn_eps": 1e-5}),
    ("mobilenetv3_large_075", _timm("mobilenetv3_large_075"), {"bn_eps": 1e-5}),
    ("mobilenetv3_small_075", _timm("mobilenetv3_small_075"), {"bn_eps": 1e-5}),
    ("shufflenetv2_050", _tv("shufflenet_v2_x0_5"), {}),
    ("shufflenetv2_100", _tv("shufflenet_v2_x1_0"), {}),
    ("shufflenetv2_150", _tv("shufflenet_v2_x1_5"), {}),
    ("shufflenetv2_200", _tv("shufflenet_v2_x2_0"), {}),
    ("efficientnet_b0", _tv("efficientnet_b0"), {}),
    ("efficientnet_b1", _tv("efficientnet_b1"), {}),
    ("efficientnet_b2", _tv("efficientnet_b2"), {}),
    ("efficientnet_b3", _tv("efficientnet_b3"), {}),
    ("efficientnet_b0", _timm("efficientnet_b0"), {}),
]


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm affine parameters and running statistics, so a wrong eps or order shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
    return model.eval()


@pytest.mark.parametrize(("name", "build_ref", "overrides"), CASES,
                         ids=[f"{n}-{b.__qualname__.split('.')[0].strip('_')}" for n, b, _ in CASES])
def test_reference_outputs_match(name: str, build_ref: Callable[[], nn.Module], overrides: dict) -> None:
    ref = _randomize(build_ref())
    ours = lv.create_model(name, **overrides).eval()
    lv.load_checkpoint(ours, ref.state_dict())
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    scale = expected.abs().max()
    assert scale > 0
    assert (got - expected).abs().max() / scale <= 1e-4


def test_wrong_bn_eps_is_detected() -> None:
    """The parity check is sensitive: timm weights with torchvision's eps (1e-3) do not match."""
    ref = _randomize(_timm("mobilenetv3_small_100")())
    ours = lv.create_model("mobilenetv3_small_100").eval()  # bn_eps=1e-3
    lv.load_checkpoint(ours, ref.state_dict())
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert (got - expected).abs().max() / expected.abs().max() > 1e-4


# ShuffleNetV1, paper Table 1: stage 2/3/4 output channels at 1x for each group count
TABLE1 = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536)}


@pytest.mark.parametrize("groups", sorted(TABLE1))
def test_shufflenetv1_widths_follow_paper_table1(groups: int) -> None:
    model = lv.create_model(f"shufflenetv1_g{groups}_100")
    assert [f["num_chs"] for f in model.feature_info] == list(TABLE1[groups])
    assert [f["reduction"] for f in model.feature_info] == [8, 16, 32]
    assert [len(s) for s in model.stages] == [4, 8, 4]
    stem_conv = model.stem[0].conv
    assert (stem_conv.out_channels, stem_conv.kernel_size, stem_conv.stride) == (24, (3, 3), (2, 2))
    first, second = model.stages[0][0], model.stages[0][1]
    # the first pointwise conv of stage 2 is dense (24 input channels), the others are grouped
    assert first.conv_pw.conv.groups == 1 and second.conv_pw.conv.groups == groups
    # bottleneck = 1/4 of the unit's output; stride-2 units concatenate an avg-pooled shortcut
    assert first.conv_pw.conv.out_channels == TABLE1[groups][0] // 4
    assert first.conv_pwl.conv.out_channels == TABLE1[groups][0] - 24
    assert isinstance(first.shortcut, nn.AvgPool2d) and first.conv_pwl.conv.groups == groups
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_shufflenetv1_scaled_widths_stay_group_compatible() -> None:
    """s x widths that break group divisibility are rounded to multiples of 4g (stages) and g (stem)."""
    model = lv.create_model("shufflenetv1_g4_050")
    assert [f["num_chs"] for f in model.feature_info] == [144, 272, 544]  # 136 -> 144 (multiple of 16)
    assert model.stem[0].conv.out_channels == 12
    g8 = lv.create_model("shufflenetv1_g8_050")
    assert g8.stem[0].conv.out_channels == 16  # 12 is not a multiple of 8
    assert [f["num_chs"] for f in g8.feature_info] == [192, 384, 768]
