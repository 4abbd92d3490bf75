"""SSD / SSDLite against torchvision: the same weights give the same detections."""

from __future__ import annotations

import pytest
import torch
import torchvision

import litevision as lv
from litevision.bench.complexity import count_complexity


def _randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    tv = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                    num_classes=91).eval()
    _randomize_bn(tv)
    ours = lv.create_model("ssdlite320_mobilenetv3_large", num_classes=90)
    lv.load_checkpoint(ours, tv.state_dict())  # auto-detected: torchvision's layout, loaded by position
    return tv, ours.eval()


def test_torchvision_weights_load_and_the_detections_match(pair) -> None:
    tv, ours = pair
    images = torch.rand(2, 3, 320, 320, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = tv(list(images))
        got = ours((images - 0.5) / 0.5)  # torchvision normalizes with mean 0.5, std 0.5 inside the model
    for e, g in zip(expected, got):
        assert g["boxes"].shape[0] == e["boxes"].shape[0] > 0
        torch.testing.assert_close(g["scores"], e["scores"], atol=1e-4, rtol=0)
        torch.testing.assert_close(g["boxes"], e["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(g["labels"] + 1, e["labels"])  # torchvision's label 0 is the background


def test_training_losses_match_torchvision(pair) -> None:
    tv, ours = pair
    images = torch.rand(2, 3, 320, 320, generator=torch.Generator().manual_seed(2))
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 120.0, 200.0], [150.0, 40.0, 300.0, 90.0]]),
                "labels": torch.tensor([3, 7])},
               {"boxes": torch.tensor([[50.0, 50.0, 250.0, 260.0]]), "labels": torch.tensor([0])}]
    tv_targets = [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]
    tv.train()
    ours.train()
    try:
        # batch statistics in train mode: both see the same batch, so the same statistics
        expected = tv(list(images), tv_targets)
        got = ours((images - 0.5) / 0.5, targets)
    finally:
        tv.eval()
        ours.eval()
    for key in ("bbox_regression", "classification"):
        torch.testing.assert_close(got[key], expected[key], atol=1e-4, rtol=1e-4)


def test_params_match_torchvision_and_the_card(pair) -> None:
    tv, ours = pair
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters()) == 3_440_060
    card = lv.get_model_card("ssdlite320_mobilenetv3_large")
    assert card.task == "detection" and card.figures.params_m == pytest.approx(3.44006)
    macs = count_complexity(ours, (3, 320, 320)).macs_g
    assert abs(macs / card.figures.macs_g - 1) < 0.03, macs


def test_default_boxes_follow_the_input_size() -> None:
    model = lv.create_model("ssdlite320_mobilenetv3_large", num_classes=3).eval()
    with torch.no_grad():
        small = model.forward_raw(torch.zeros(1, 3, 192, 256))[2]
        large = model.forward_raw(torch.zeros(1, 3, 320, 320))[2]
    assert small.shape[0] != large.shape[0]
    assert float(small[:, 2].max()) <= 256 * 1.5 and float(large[:, 3].max()) <= 320 * 1.5
