"""LSNet: official checkpoint layout, parity with an independent functional reference, fusion counts,
distillation heads, any-size inputs and ONNX export."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import litevision as lv
from litevision.models import CheckpointMismatchError, get_model_card

# official state-dict key lists (key, shape, dtype), dumped from the THU-MIG/lsnet models
REFERENCE = Path(__file__).resolve().parent / "data" / "lsnet"

# independent description of the official variants (model/lsnet.py): widths, depths, heads
ARCH = {
    "lsnet_t": ((64, 128, 256, 384), (0, 2, 8, 10)),
    "lsnet_s": ((96, 192, 320, 448), (1, 2, 8, 10)),
    "lsnet_b": ((128, 256, 384, 512), (4, 6, 8, 10)),
}
HEADS, KEY_DIM = (3, 3, 3, 4), 16


def _key_list(name: str) -> dict[str, tuple[int, ...]]:
    path = REFERENCE / f"{name}_state_dict_keys.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return {k: tuple(int(s) for s in shape.split("x")) if shape != "scalar" else () for k, shape, _ in rows}


def _official_bias_idxs(resolution: int) -> torch.Tensor:
    points = list(itertools.product(range(resolution), range(resolution)))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            if off not in offsets:
                offsets[off] = len(offsets)
            idxs.append(offsets[off])
    return torch.tensor(idxs).view(len(points), len(points))


def _deterministic_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Values for every key of the official list: variance-preserving convs, non-trivial BN statistics,
    norm scales below 1 so activations stay O(1) through the network (a fair float32 comparison)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in _key_list(name).items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(7)
        elif key.endswith("attention_bias_idxs"):
            sd[key] = _official_bias_idxs(math.isqrt(shape[0]))
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("running_mean") or key.endswith("bias"):
            sd[key] = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # BN / GroupNorm weights, small so 20 residual blocks stay well-conditioned
            sd[key] = 0.1 + 0.4 * torch.rand(shape, generator=gen)
        elif key.endswith("attention_biases"):
            sd[key] = torch.randn(shape, generator=gen)
        else:  # conv / linear weights
            sd[key] = torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]))
    return sd


# ---- an independent plain-PyTorch forward of the official network, reading the state dict directly ----

def _conv_bn(sd, prefix: str, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    weight = sd[f"{prefix}.c.weight"]
    groups = x.shape[1] // weight.shape[1]
    x = F.conv2d(x, weight, None, stride, weight.shape[-1] // 2, 1, groups)
    return F.batch_norm(x, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"],
                        sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"], False, 0.0, 1e-5)


def _ska(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    b, c, h, wd = x.shape
    rows = w[:, torch.arange(c) % w.shape[1]]  # channel c uses weight row c mod G
    xp = F.pad(x, (1, 1, 1, 1))
    return sum(xp[:, :, u:u + h, v:v + wd] * rows[:, :, 3 * u + v] for u in range(3) for v in range(3))


def _ls_conv(sd, p: str, x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    h = F.relu(_conv_bn(sd, f"{p}.lkp.cv1", x))
    h = F.relu(_conv_bn(sd, f"{p}.lkp.cv3", _conv_bn(sd, f"{p}.lkp.cv2", h)))
    w = F.conv2d(h, sd[f"{p}.lkp.cv4.weight"], sd[f"{p}.lkp.cv4.bias"])
    w = F.group_norm(w, c // 8, sd[f"{p}.lkp.norm.weight"], sd[f"{p}.lkp.norm.bias"])
    w = w.view(x.shape[0], c // 8, 9, *x.shape[2:])
    out = _ska(x, w)
    return F.batch_norm(out, sd[f"{p}.bn.running_mean"], sd[f"{p}.bn.running_var"], sd[f"{p}.bn.weight"],
                        sd[f"{p}.bn.bias"], False, 0.0, 1e-5) + x


def _attention(sd, p: str, x: torch.Tensor, heads: int) -> torch.Tensor:
    b, c, h, w = x.shape
    n, qk = h * w, KEY_DIM * heads
    q, k, v = _conv_bn(sd, f"{p}.qkv", x).split([qk, qk, c], 1)
    q = _conv_bn(sd, f"{p}.dw", q)
    q, k, v = q.reshape(b, heads, -1, n), k.reshape(b, heads, -1, n), v.reshape(b, heads, -1, n)
    bias = sd[f"{p}.attention_biases"][:, sd[f"{p}.attention_bias_idxs"]]
    if bias.shape[-1] != n:  # the official detection backbone's resize
        bias = F.interpolate(bias.unsqueeze(0), size=(n, n), mode="bicubic").squeeze(0)
    attn = ((q.transpose(-2, -1) @ k) * KEY_DIM ** -0.5 + bias).softmax(-1)
    out = (v @ attn.transpose(-2, -1)).reshape(b, -1, h, w)
    return _conv_bn(sd, f"{p}.proj.1", F.relu(out))


def reference_forward(sd, name: str, x: torch.Tensor, distilled: bool = False) -> torch.Tensor:
    dims, depths = ARCH[name]
    x = F.relu(_conv_bn(sd, "patch_embed.0", x, 2))
    x = F.relu(_conv_bn(sd, "patch_embed.2", x, 2))
    x = _conv_bn(sd, "patch_embed.4", x, 2)
    for stage, depth in enumerate(depths):
        first = 0
        if stage > 0:
            x = _conv_bn(sd, f"blocks{stage + 1}.1", _conv_bn(sd, f"blocks{stage + 1}.0", x, 2))
            first = 2
        for d in range(depth):
            p = f"blocks{stage + 1}.{first + d}"
            if d % 2 == 0:
                x = _conv_bn(sd, f"{p}.mixer.conv", x) + _conv_bn(sd, f"{p}.mixer.conv1", x) + x
                s = F.relu(F.conv2d(x.mean((2, 3), keepdim=True), sd[f"{p}.se.fc1.weight"], sd[f"{p}.se.fc1.bias"]))
                x = x * torch.sigmoid(F.conv2d(s, sd[f"{p}.se.fc2.weight"], sd[f"{p}.se.fc2.bias"]))
            elif stage == 3:
                x = x + _attention(sd, f"{p}.mixer.m", x, HEADS[stage])
            else:
                x = _ls_conv(sd, f"{p}.mixer", x)
            x = x + _conv_bn(sd, f"{p}.ffn.m.pw2", F.relu(_conv_bn(sd, f"{p}.ffn.m.pw1", x)))
    x = x.mean((2, 3))

    def head(prefix: str) -> torch.Tensor:
        h = F.batch_norm(x, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"],
                         sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"], False, 0.0, 1e-5)
        return F.linear(h, sd[f"{prefix}.l.weight"], sd[f"{prefix}.l.bias"])

    return (head("head") + head("head_dist")) / 2 if distilled else head("head")


def _close(out: torch.Tensor, ref: torch.Tensor, tol: float = 1e-4) -> None:
    err = (out - ref).abs().max() / ref.abs().max().clamp_min(1e-6)
    assert err < tol, f"relative error {err:.2e}"


# ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lsnet_t", "lsnet_s", "lsnet_b", "lsnet_t_distill"])
def test_state_dict_keys_and_shapes_are_official(name: str) -> None:
    expected = _key_list(name)
    model = lv.create_model(name)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(got) == list(expected)  # same keys in the same order
    assert got == expected


@pytest.mark.parametrize("name", ["lsnet_s_distill", "lsnet_b_distill"])
def test_distilled_keys_add_head_dist(name: str) -> None:
    base = _key_list(name.removesuffix("_distill"))
    head = {k.replace("head.", "head_dist.", 1): v for k, v in base.items() if k.startswith("head.")}
    got = {k: tuple(v.shape) for k, v in lv.create_model(name).state_dict().items()}
    assert got == {**base, **head}


@pytest.mark.parametrize("name,unfused,fused", [
    ("lsnet_t", 11_409_832, 11_370_488),
    ("lsnet_s", 16_146_304, 16_098_232),
    ("lsnet_b", 23_313_608, 23_249_320),
])
def test_parameter_counts_unfused_and_fused(name: str, unfused: int, fused: int) -> None:
    model = lv.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == unfused
    lv.fuse_model(model)
    assert sum(p.numel() for p in model.parameters()) == fused
    kinds = {type(m).__name__ for m in model.modules()}
    assert not kinds & {"ConvBN", "BNLinear", "RepVGGDW", "BatchNorm1d"}
    # the only BatchNorms left are LS convolutions' (applied after SKA, nothing to fold them into)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == sum(
        type(m).__name__ == "LSConv" for m in model.modules())


def test_official_checkpoint_formats_load_and_match_reference(tmp_path: Path) -> None:
    sd = _deterministic_state_dict("lsnet_t")
    files = {
        "lsnet_t.pth": {"model": sd},  # as published by the official training script
        "ddp.pth": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        "pytorch_model.bin": sd,  # timm hub layout: the same keys, flat
    }
    x = torch.randn(1, 3, 224, 224)
    model = lv.create_model("lsnet_t").eval()
    for filename, obj in files.items():
        torch.save(obj, tmp_path / filename)
        for value in model.state_dict().values():  # forget the previous file's values
            value.zero_()
        lv.load_checkpoint(model, tmp_path / filename)
        for key, value in model.state_dict().items():
            assert torch.equal(value, sd[key]), (filename, key)
    assert lv.create_model("lsnet_t", checkpoint_path=tmp_path / "lsnet_t.pth").state_dict().keys() == sd.keys()
    ref = reference_forward(sd, "lsnet_t", x)
    with torch.no_grad():
        _close(model(x), ref)
        _close(lv.fuse_model(model)(x), ref)


def test_distilled_checkpoint_and_heads(tmp_path: Path) -> None:
    sd = _deterministic_state_dict("lsnet_t_distill", seed=1)
    torch.save({"model": sd}, tmp_path / "lsnet_t_distill.pth")
    model = lv.create_model("lsnet_t_distill", checkpoint_path=tmp_path / "lsnet_t_distill.pth")
    x = torch.randn(2, 3, 160, 128)  # a second resolution: stage 4 is 3x3, the bias table is resized
    with torch.no_grad():
        _close(model.eval()(x), reference_forward(sd, "lsnet_t", x, distilled=True))
        model.train()  # train mode: still one logits tensor, the mean of both heads (batch-statistics BN)
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(model(x), (model.head(pre) + model.head_dist(pre)) / 2)
        model.set_distilled_training(True)
        pair = model(x)
        assert isinstance(pair, tuple) and len(pair) == 2
        model.eval()
        assert isinstance(model(x), torch.Tensor)
    with pytest.raises(CheckpointMismatchError, match="head_dist"):
        lv.load_checkpoint(lv.create_model("lsnet_t"), tmp_path / "lsnet_t_distill.pth")
    with pytest.raises(ValueError):
        lv.create_model("lsnet_t").set_distilled_training(True)


def test_checkpoint_without_derived_buffers_loads() -> None:
    sd = _deterministic_state_dict("lsnet_t", seed=2)
    slim = {k: v for k, v in sd.items() if not k.endswith(("attention_bias_idxs", "num_batches_tracked"))}
    model = lv.load_checkpoint(lv.create_model("lsnet_t"), slim)
    assert torch.equal(model.state_dict()["blocks4.3.mixer.m.attention_bias_idxs"], _official_bias_idxs(4))
    torch.testing.assert_close(model.state_dict()["head.l.weight"], sd["head.l.weight"])


@pytest.mark.parametrize("size", [(64, 64), (100, 130), (288, 288)])
def test_any_input_size_features(size: tuple[int, int]) -> None:
    model = lv.create_model("lsnet_t", features_only=True).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert [o.shape[1] for o in outs] == [64, 128, 256, 384]
    h, w = size
    for o, r in zip(outs, (8, 16, 32, 64)):
        assert abs(o.shape[2] - h / r) <= 1 and abs(o.shape[3] - w / r) <= 1


def test_attention_bias_resize_matches_bicubic_interpolate() -> None:
    from litevision.models.lsnet import bicubic_resize_matrix

    bias = torch.randn(4, 16, 16)
    for n in (1, 4, 9, 16, 30, 100):
        m = bicubic_resize_matrix(torch.empty(n), 16)
        expected = F.interpolate(bias[None], size=(n, n), mode="bicubic", align_corners=False)[0]
        torch.testing.assert_close(m @ bias @ m.T, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(bicubic_resize_matrix(torch.empty(16), 16), torch.eye(16))


def test_cards_and_complexity() -> None:
    card = get_model_card("lsnet_b_distill")
    assert card.figures.params_fused and card.figures.top1 == 81.6 and card.figures.macs_g == 1.3
    assert get_model_card("lsnet_t").figures.top1 == 74.9
    model = lv.fuse_model(lv.create_model("lsnet_t"))
    c = lv.count_complexity(model, (3, 224, 224))
    # SKA at the LS blocks: stage 2 (128 ch, 14x14) once, stage 3 (256 ch, 7x7) four times
    assert c.by_operator["litevision.ska"] == 9 * (128 * 14 * 14 + 4 * 256 * 7 * 7)
    assert c.by_operator["litevision.ska_weight_norm"] == 5 * 9 * (16 * 14 * 14 + 4 * 32 * 7 * 7)
    assert 0.30e9 < c.macs < 0.33e9


def _export_and_check(model: torch.nn.Module, path: Path, export_size: int, dynamo: bool) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort

    x = torch.randn(2, 3, export_size, export_size)  # not batch 1: torch.export would specialise it
    if dynamo:
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("h", min=64), 3: torch.export.Dim("w", min=64)}
        torch.onnx.export(model, (x,), dynamo=True, opset_version=18, input_names=["input"],
                          output_names=["logits"], dynamic_shapes=(dims,)).save(str(path))
    else:
        axes = {"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}}
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes)
    graph = onnx.load(str(path)).graph
    assert {n.domain for n in graph.node} <= {"", "ai.onnx"}, "custom operator domains in the graph"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, export_size, export_size), (4, 3, export_size, export_size), (2, 3, 96, 160)]:
        x = torch.randn(shape)
        with torch.no_grad():
            ref = model(x).numpy()
        out = session.run(None, {"input": x.numpy()})[0]
        assert np.abs(out - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max())), shape


def _deploy_model(name: str) -> torch.nn.Module:
    sd = _deterministic_state_dict(name, seed=3)
    return lv.fuse_model(lv.load_checkpoint(lv.create_model(name), sd))


def test_onnx_export_lsnet_t_quick(tmp_path: Path) -> None:
    """TorchScript-based exporter: standard ops only, dynamic batch and spatial size, onnxruntime parity."""
    _export_and_check(_deploy_model("lsnet_t"), tmp_path / "lsnet_t.onnx", 128, dynamo=False)


@pytest.mark.slow
@pytest.mark.export
@pytest.mark.parametrize("name", ["lsnet_s", "lsnet_b", "lsnet_t_distill"])
def test_onnx_export_torchscript_exporter(name: str, tmp_path: Path) -> None:
    _export_and_check(_deploy_model(name), tmp_path / f"{name}.onnx", 224, dynamo=False)


@pytest.mark.slow
@pytest.mark.export
def test_onnx_export_dynamo_exporter(tmp_path: Path) -> None:
    _export_and_check(_deploy_model("lsnet_t"), tmp_path / "lsnet_t_dynamo.onnx", 224, dynamo=True)
