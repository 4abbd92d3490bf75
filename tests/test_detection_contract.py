"""The detection contract, checked for every registered detector (a new detector needs no new test)."""

from __future__ import annotations

import copy

import pytest
import torch

import litevision as lv
from litevision.layers.fuse import fuse_model
from litevision.models import (
    DetectorExport,
    get_model_card,
    load_trained_model,
    save_weights,
    weights_metadata,
)

DETECTORS = lv.list_models(task="detection")
NUM_CLASSES = 5


def _sizes(name: str) -> list[tuple[int, ...]]:
    return [tuple(s) for s in get_model_card(name).extra["test_sizes"]]


def _targets(batch: int, size: tuple[int, int], seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(batch):
        n = i + 1  # image 0: one object, image 1: two ...
        xy = torch.rand(n, 2, generator=g) * torch.tensor([size[1] * 0.6, size[0] * 0.6])
        wh = 16 + torch.rand(n, 2, generator=g) * torch.tensor([size[1] * 0.35, size[0] * 0.35])
        out.append({"boxes": torch.cat((xy, xy + wh), 1), "labels": torch.randint(0, NUM_CLASSES, (n,), generator=g)})
    return out


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return lv.create_model(name, num_classes=NUM_CLASSES)


def _randomize_bn(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics so that fusion has something to fold."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def test_list_models_filters_by_task() -> None:
    assert {"ssdlite320_mobilenetv3_large", "ssd300_mobilenetv1", "shufflenetv2_100_nano"} <= set(DETECTORS)
    assert not set(DETECTORS) & set(lv.list_models(task="classification"))
    assert "mobilenetv2_100" in lv.list_models(task="classification")


@pytest.mark.parametrize("name", DETECTORS)
def test_train_mode_returns_losses_that_reach_every_parameter(name: str) -> None:
    model = _build(name).train()
    shape = _sizes(name)[0]
    losses = model(torch.randn(shape), _targets(shape[0], shape[-2:]))
    assert isinstance(losses, dict) and losses
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    # an image without objects is allowed (all default boxes / points are background)
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * shape[0]
    losses = model(torch.randn(shape), empty)
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("name", DETECTORS)
def test_eval_returns_detections_per_image_at_any_size(name: str) -> None:
    model = _build(name).eval()
    model.set_postprocess(score_thresh=0.0)
    for shape in _sizes(name):
        with torch.no_grad():
            dets = model(torch.randn(shape))
        assert len(dets) == shape[0]
        for d in dets:
            n = d["boxes"].shape[0]
            assert d["boxes"].shape == (n, 4) and d["scores"].shape == (n,) and d["labels"].shape == (n,)
            assert 0 < n <= model.post.detections_per_img
            assert d["labels"].dtype == torch.int64 and int(d["labels"].max()) < NUM_CLASSES
            assert (d["boxes"][:, 2:] >= d["boxes"][:, :2]).all()
            assert d["boxes"][:, 2].max() <= shape[-1] and d["boxes"][:, 3].max() <= shape[-2]
            assert (d["scores"][:-1] >= d["scores"][1:]).all(), "detections sorted by score"
    with pytest.raises(ValueError, match="needs targets"):
        model.train()(torch.randn(_sizes(name)[0]))


@pytest.mark.parametrize("name", DETECTORS)
def test_batch_mates_do_not_change_detections(name: str) -> None:
    model = _build(name).eval()
    x = torch.randn(_sizes(name)[0])
    with torch.no_grad():
        alone = model(x[:1])[0]
        together = model(torch.cat([x[:1], torch.randn_like(x)]))[0]
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(alone[key], together[key], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", DETECTORS)
def test_state_dict_round_trip_and_fusion(name: str, tmp_path) -> None:
    model = _build(name).eval()
    _randomize_bn(model)
    path = tmp_path / "w.safetensors"
    meta = weights_metadata(name, {}, NUM_CLASSES, [f"c{i}" for i in range(NUM_CLASSES)],
                            get_model_card(name).data_config, task="detection")
    save_weights(path, model.state_dict(), meta)
    again, saved = load_trained_model(path)
    assert saved["task"] == "detection" and saved["num_classes"] == NUM_CLASSES
    x = torch.randn(_sizes(name)[0])
    with torch.no_grad():
        raw = model.forward_raw(x)
        for a, b in zip(raw, again.forward_raw(x)):
            torch.testing.assert_close(a, b)
        fused = fuse_model(copy.deepcopy(model)).eval()
        for a, b in zip(raw, fused.forward_raw(x)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    norms = lambda m: sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())  # noqa: E731
    assert norms(fused) < norms(model), "fusion folded BatchNorm into the convolutions"


@pytest.mark.parametrize("name", DETECTORS)
def test_export_module_bakes_priors_for_its_size(name: str) -> None:
    model = _build(name).eval()
    shape = _sizes(name)[1]
    x = torch.randn(shape)
    with torch.no_grad():
        boxes, scores = model.decode(model.forward_raw(x), shape[-2:])
        exported = DetectorExport(copy.deepcopy(model), shape[-2:])
        eb, es = exported(x)
    torch.testing.assert_close(eb, boxes)
    torch.testing.assert_close(es, scores)
    assert scores.shape[-1] == NUM_CLASSES and boxes.shape[:2] == scores.shape[:2]


@pytest.mark.parametrize("backbone", ["lsnet_t", "shufflenetv2_100", "lcnet_t", "mobilenetv2_100", "resnet18"])
def test_either_head_on_any_backbone(backbone: str) -> None:
    for name in ("ssdlite320_mobilenetv3_large", "shufflenetv2_100_nano"):
        model = lv.create_model(name, num_classes=NUM_CLASSES, backbone=backbone).train()
        losses = model(torch.randn(2, 3, 192, 160), _targets(2, (192, 160)))  # batch 2: 1x1 maps in train mode
        sum(losses.values()).backward()
        unused = [n for n, p in model.named_parameters() if p.grad is None]
        assert not unused, f"{name} on {backbone}: unused parameters {unused[:4]}"


def test_backbone_without_the_strides_is_named() -> None:
    with pytest.raises(ValueError, match="hybridsn.*reduction|no stage of reduction"):
        lv.create_model("shufflenetv2_100_nano", backbone="hybridsn")


def test_cli_lists_detectors(capsys) -> None:
    from litevision.cli.main import main

    assert main(["list", "--task", "detection"]) == 0
    assert capsys.readouterr().out.split() == DETECTORS
