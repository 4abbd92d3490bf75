"""Structured pruning: a contract over the registry, the custom pruners, importances, ratio mode, the CLI."""

from __future__ import annotations

import copy
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import litevision as lv
from litevision.bench import count_complexity
from litevision.cli.main import main as cli_main
from litevision.compress import PruneResult, save_pruned
from litevision.errors import UserError
from litevision.layers import ChannelShuffle
from litevision.layers.dynamic_conv import DTConv
from litevision.models import create_model, get_model_card, load_trained_model, model_structure, read_metadata
from litevision.models.lsnet import LSConv
from litevision.models.shufflenetv1 import ShuffleUnitV1
from litevision.models.shufflenetv2 import ShuffleUnitV2
from litevision.workflows.compare import _compressed_label

tp = pytest.importorskip("torch_pruning")

pytestmark = pytest.mark.filterwarnings("ignore")

CLASSES = 10
STITCHED = {"stitch": [{"module": "eca", "where": "stages"}]}
# the family's smallest variant, unless a larger one shows what is specific (shuffle groups, CBAM)
REPRESENTATIVE = {"shufflenetv1": "shufflenetv1_g3_050", "resnet": "cbam_resnet18"}


def _families() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in lv.list_models(task="classification"):
        out.setdefault(get_model_card(name).family, []).append(name)
    return out


def _representatives() -> list[str]:
    reps = []
    for family, names in _families().items():
        smallest = min(names, key=lambda n: (get_model_card(n).figures.macs_g or math.inf, n))
        reps.append(REPRESENTATIVE.get(family, smallest))
    return sorted(reps)


DEFAULT_CASES = [(name, "") for name in _representatives()] + [("resnet18", "stitch:eca")]
SLOW_CASES = [pytest.param(name, "", marks=pytest.mark.slow)
              for name in lv.list_models(task="classification") if name not in _representatives()]


def _kwargs(variant: str) -> dict[str, Any]:
    return copy.deepcopy(STITCHED) if variant == "stitch:eca" else {}


def _size(name: str) -> tuple[int, ...]:
    card = get_model_card(name)
    return tuple(card.input_size) if len(card.input_size) == 4 else (card.input_size[0], 64, 64)


def _shapes(name: str) -> list[tuple[int, ...]]:
    """Two inputs: image models at two sizes; HybridSN (one patch size by design) at two batch sizes."""
    size = _size(name)
    if len(size) == 4:
        return [(2, *size), (1, *size)]
    return [(2, *size), (1, size[0], 80, 96)]


@torch.no_grad()
def _lively(model: nn.Module) -> nn.Module:
    """Trained-looking BatchNorms (random statistics and affine terms): outputs of order one, distinct channels."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.copy_(0.1 * torch.randn(n, generator=g))
    return model


@cache
def _pruned(name: str, variant: str) -> tuple[nn.Module, PruneResult]:
    torch.manual_seed(0)
    model = _lively(lv.create_model(name, num_classes=CLASSES, **_kwargs(variant)).eval())
    return model, lv.prune(model, target_macs=0.5, input_size=_size(name))


def _close(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-4) -> None:
    scale = float(expected.abs().max()) or 1.0
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale)


def _assert_pure_safetensors(path: Path) -> dict[str, str]:
    """The file is an 8-byte header length, a JSON header and raw tensor bytes that fill the rest: no pickle."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    ends = [entry["data_offsets"][1] for entry in header.values()]
    assert max(ends) == len(data) - 8 - n
    assert all(isinstance(v, str) for v in meta.values())
    return meta


@pytest.mark.parametrize(("name", "variant"), DEFAULT_CASES + SLOW_CASES)
def test_pruned_model_contract(name: str, variant: str, tmp_path: Path) -> None:
    model, result = _pruned(name, variant)
    size = _size(name)
    assert abs(result.macs_fraction - 0.5) <= 0.05 * 0.5, result.trials
    assert count_complexity(result.model, size).macs == result.macs_after
    assert result.params_after < result.params_before
    assert count_complexity(model, size).macs == result.macs_before  # the input model is left as it was
    pruned = result.model.eval()
    outputs = []
    for shape in _shapes(name):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            y = pruned(x)
        assert y.shape == (shape[0], CLASSES) and torch.isfinite(y).all()
        outputs.append((x, y))
    x, y = outputs[0]
    widths = {}  # plug-in modules (SE, CBAM, a stitched ECA) say their new width
    hooks = [m.register_forward_hook(lambda mod, i, o: widths.__setitem__(mod, i[0].shape[1]))
             for m in pruned.modules() if type(m).__module__.startswith("litevision.modules.")
             and isinstance(getattr(m, "out_channels", None), int)]
    with torch.no_grad():
        pruned(x)
    for h in hooks:
        h.remove()
    assert all(m.out_channels == c for m, c in widths.items())
    with torch.no_grad():
        assert pruned.forward_head(pruned.forward_features(x), pre_logits=True).shape[1] == pruned.num_features
        _close(lv.fuse_model(copy.deepcopy(pruned))(x), y)
    # saved as data: safetensors + JSON metadata with the structure, rebuilt without pickle
    path = save_pruned(tmp_path / "pruned.safetensors", result, model_kwargs=_kwargs(variant))
    meta = _assert_pure_safetensors(path)
    assert json.loads(meta["structure"]) == result.structure == model_structure(pruned)
    assert json.loads(meta["pruning"])["macs_after"] == result.macs_after
    loaded, _ = load_trained_model(path)
    with torch.no_grad():
        for x, y in outputs:
            assert torch.equal(loaded(x), y)


@pytest.mark.export
@pytest.mark.parametrize(("name", "variant"), DEFAULT_CASES)
def test_pruned_model_exports_to_onnx(name: str, variant: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from litevision.export import export_onnx

    _, result = _pruned(name, variant)
    fused = lv.fuse_model(copy.deepcopy(result.model))
    x = torch.randn(2, *_size(name), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = fused(x)
    path = export_onnx(fused, tmp_path / "pruned.onnx", input_size=_size(name)).path
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _close(torch.from_numpy(session.run(None, {"input": x.numpy()})[0]), expected, rel=1e-3)


def test_structure_travels_with_create_model(tmp_path: Path) -> None:
    _, result = _pruned("mobilenetv2_035", "")
    path = save_pruned(tmp_path / "p.safetensors", result)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = result.model(x)
        from_file = create_model("mobilenetv2_035", num_classes=CLASSES, checkpoint_path=path).eval()
        by_hand = create_model("mobilenetv2_035", num_classes=CLASSES, structure=result.structure).eval()
        lv.load_checkpoint(by_hand, path)
        assert torch.equal(from_file(x), expected) and torch.equal(by_hand(x), expected)
    with pytest.raises(UserError, match="classes"):
        create_model("mobilenetv2_035", num_classes=3, structure=result.structure)
    with pytest.raises(UserError, match="does not fit"):
        create_model("mobilenetv1_025", num_classes=CLASSES, structure=result.structure)


# ---------------------------------------------------------------------------------------------------------
# the custom pruners: really pruned, and the kept channels compute what they computed before


def _zero_rows_equivalence(unit: ShuffleUnitV1, rows: list[int]) -> None:
    """Zero every tensor of shuffle rows ``rows``, prune them away: the unit's output does not change."""
    from litevision.compress._custom import ChannelScorer, ShuffleBottleneckPruner

    pw, dw, pwl = unit.conv_pw.conv, unit.conv_dw.conv, unit.conv_pwl.conv
    g, m = pwl.groups, pw.out_channels // pwl.groups
    channels = [k * m + j for j in rows for k in range(g)]
    positions = [j * g + k for j in rows for k in range(g)]
    with torch.no_grad():
        pw.weight[channels] = 0
        for bn, idx in ((unit.conv_pw.bn, channels), (unit.conv_dw.bn, positions)):
            bn.weight[idx], bn.bias[idx], bn.running_mean[idx] = 0, 0, 0
        dw.weight[positions] = 0
        for p in positions:
            q = p // m
            pwl.weight[q * (pwl.out_channels // g):(q + 1) * (pwl.out_channels // g), p % m] = 0
    x = torch.randn(2, pw.in_channels, 16, 16)
    with torch.no_grad():
        expected = unit(x)
        ShuffleBottleneckPruner(unit).prune_to(len(channels) / (g * m), ChannelScorer("l2", torch.Generator()))
        assert pw.out_channels == g * (m - len(rows)) and pw.groups == pwl.groups == g
        _close(unit(x), expected, 1e-5)


def test_shufflenetv1_prunes_shuffle_rows_and_keeps_groups() -> None:
    _, result = _pruned("shufflenetv1_g3_050", "")
    units = [m for m in result.model.modules() if isinstance(m, ShuffleUnitV1)]
    originals = [m for m in create_model("shufflenetv1_g3_050").modules() if isinstance(m, ShuffleUnitV1)]
    assert all(u.conv_pw.conv.out_channels < o.conv_pw.conv.out_channels for u, o in zip(units, originals))
    for unit in units:  # groups intact, stage widths intact
        pw, pwl = unit.conv_pw.conv, unit.conv_pwl.conv
        assert pw.out_channels % pwl.groups == 0 and pwl.in_channels == pw.out_channels
    assert [u.conv_pwl.conv.out_channels for u in units] == [o.conv_pwl.conv.out_channels for o in originals]
    torch.manual_seed(0)
    g8 = _lively(create_model("shufflenetv1_g8_100").eval())
    # g = 8, 12 rows of 8 positions, groups of 12 positions: rows 1, 4, 7, 10 straddle two groups, 4 + 4 each
    _zero_rows_equivalence(g8.stages[0][1], [1, 4, 7, 10])
    torch.manual_seed(0)
    g3 = _lively(create_model("shufflenetv1_g3_100").eval())
    _zero_rows_equivalence(g3.stages[1][1], [0, 1, 14, 15, 27, 28])  # rows inside each of the 3 groups


def test_shufflenetv2_prunes_the_branch_and_keeps_the_shuffled_width() -> None:
    _, result = _pruned("shufflenetv2_050", "")
    units = [m for m in result.model.modules() if isinstance(m, ShuffleUnitV2)]
    originals = [m for m in create_model("shufflenetv2_050").modules() if isinstance(m, ShuffleUnitV2)]
    assert any(u.conv_pw.conv.out_channels < o.conv_pw.conv.out_channels for u, o in zip(units, originals))
    assert [u.conv_pwl.conv.out_channels for u in units] == [o.conv_pwl.conv.out_channels for o in originals]
    widths = []
    hooks = [m.register_forward_hook(lambda mod, i, o: widths.append(o.shape[1]))
             for m in result.model.modules() if isinstance(m, ChannelShuffle)]
    with torch.no_grad():
        result.model(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert widths == [2 * o.conv_pwl.conv.out_channels for o in originals]


def test_lsnet_prunes_ska_weight_rows() -> None:
    from litevision.compress._custom import PrunePlan, SKAPruner, make_pruner

    _, result = _pruned("lsnet_t", "")
    pairs = [(a, b) for a, b in zip(create_model("lsnet_t").modules(), result.model.modules())
             if isinstance(a, LSConv)]
    assert pairs and all(b.lkp.weight_rows < a.lkp.weight_rows for a, b in pairs)
    for _, ls in pairs:  # channels = 8 blocks x the weight rows; LKP's output and GroupNorm follow the rows
        assert ls.bn.num_features == 8 * ls.lkp.weight_rows == ls.lkp.cv1.c.in_channels
        assert ls.lkp.cv4.out_channels == 9 * ls.lkp.weight_rows == ls.lkp.norm.num_channels
        assert ls.lkp.norm.num_groups == ls.lkp.weight_rows
    # one LS convolution: rows 0 and 3 removed = channels {block * G + row}; zero inputs there, same outputs
    torch.manual_seed(0)
    ls = next(m for m in _lively(create_model("lsnet_t")).eval().modules() if isinstance(m, LSConv))
    channels, rows_total = ls.bn.num_features, ls.lkp.weight_rows
    idxs = sorted(b * rows_total + r for b in range(channels // rows_total) for r in (0, 3))
    keep = [c for c in range(channels) if c not in idxs]
    x = torch.randn(2, channels, 8, 8)
    x[:, idxs] = 0
    with torch.no_grad():
        expected = ls(x)[:, keep]
        plan = PrunePlan(ska_lkp={ls.ska: ls.lkp}, channels={ls.ska: channels})
        make_pruner(SKAPruner, plan).prune_out_channels(ls.ska, idxs)
        tp.prune_conv_in_channels(ls.lkp.cv1.c, idxs)
        tp.prune_batchnorm_out_channels(ls.bn, idxs)
        _close(ls(x[:, keep]), expected, 1e-5)


def test_lcnet_prunes_dtconv_banks_consistently() -> None:
    from litevision.compress._custom import DTConvPruner, PrunePlan, make_pruner

    _, result = _pruned("lcnet_t", "")
    pairs = [(a, b) for a, b in zip(create_model("lcnet_t").modules(), result.model.modules())
             if isinstance(a, DTConv)]
    assert pairs and all(b.in_chs < a.in_chs and b.out_chs < a.out_chs for a, b in pairs)
    for _, dt in pairs:  # every candidate kernel, the router and its multi-scale splits have the new width
        assert dt.weight.shape == (dt.num_kernels, dt.out_chs, dt.in_chs * dt.kernel_size ** 2)
        assert sum(dt.router_features.splits) == dt.router.in_features == dt.in_chs
        assert all(s > 0 for s in dt.router_features.splits) and dt.bn.num_features == dt.out_chs
    # one DTConv: inputs 1, 5, 20 and outputs 2, 7 removed; the removed inputs zero (with their router features)
    torch.manual_seed(0)
    dt = _lively(create_model("lcnet_t")).eval().stages[1].blocks[0].local_branch
    drop_in, drop_out = [1, 5, 20], [2, 7]
    keep_in = [c for c in range(dt.in_chs) if c not in drop_in]
    keep_out = [c for c in range(dt.out_chs) if c not in drop_out]
    ms, start = dt.router_features, 0
    with torch.no_grad():
        for c, pw, dw in zip(ms.splits, ms.pw, ms.dw):
            local = [i - start for i in drop_in if start <= i < start + c]
            pw.weight[local], pw.bias[local] = 0, 0
            if isinstance(dw, nn.Conv2d):
                dw.bias[local] = 0
            start += c
        ms.bn.weight[drop_in], ms.bn.bias[drop_in], ms.bn.running_mean[drop_in] = 0, 0, 0
        x = torch.randn(2, dt.in_chs, 8, 8)
        x[:, drop_in] = 0
        expected = dt(x)[:, keep_out]
        pruner = make_pruner(DTConvPruner, PrunePlan())
        pruner.prune_in_channels(dt, drop_in)
        pruner.prune_out_channels(dt, drop_out)
        _close(dt(x[:, keep_in]), expected, 1e-5)


def test_hybridsn_spectral_fold_maps_each_channel_to_its_bands() -> None:
    """DepGraph maps a removed 3-D channel c to the 2-D conv's inputs c·D ... c·D + D - 1 (the fold of the
    spectral axis): zeroed channels pruned away leave the output unchanged."""
    torch.manual_seed(0)
    model = create_model("hybridsn").eval()
    conv = model.stages[2].conv
    drop = [3, 7, 20]
    x = torch.randn(2, 1, 30, 25, 25)
    with torch.no_grad():
        conv.weight[drop], conv.bias[drop] = 0, 0
        expected = model(x)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x[:1])
    graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=drop).prune()
    depth = model.stages[3][1].conv.in_channels // conv.out_channels
    assert model.stages[3][1].conv.in_channels == (32 - len(drop)) * depth
    with torch.no_grad():
        _close(model(x), expected, 1e-5)


# ---------------------------------------------------------------------------------------------------------
# importances, ratio mode, argument checks


@cache
def _small() -> nn.Module:
    torch.manual_seed(0)
    return _lively(lv.create_model("mobilenetv2_035", num_classes=CLASSES).eval())


@pytest.mark.parametrize("importance", ["l1", "l2", "random"])
def test_importances_run(importance: str) -> None:
    result = lv.prune(_small(), ratio=0.3, importance=importance, input_size=(3, 32, 32))
    assert result.importance == importance and result.macs_after < result.macs_before
    again = lv.prune(_small(), ratio=0.3, importance=importance, input_size=(3, 32, 32))
    assert again.structure == result.structure  # seeded: the same channels go each time


def test_taylor_uses_the_calibration_batch() -> None:
    inputs = torch.randn(8, 3, 32, 32)
    calls = []

    def loss_fn(model: nn.Module) -> torch.Tensor:
        calls.append(1)
        return nn.functional.cross_entropy(model(inputs), torch.arange(8) % CLASSES)

    lv.prune(_small(), ratio=0.3, importance="taylor", input_size=(3, 32, 32), calibration=loss_fn,
             iterative_steps=2)
    assert len(calls) == 2  # gradients recomputed before each step
    batch = (inputs, torch.arange(8) % CLASSES)
    a = lv.prune(_small(), ratio=0.3, importance="taylor", input_size=(3, 32, 32), calibration=batch)
    b = lv.prune(_small(), ratio=0.3, importance="taylor", input_size=(3, 32, 32),
                 calibration=(inputs, (torch.arange(8) + 3) % CLASSES))
    weights_a = {k: v for k, v in a.model.state_dict().items() if v.is_floating_point()}
    weights_b = {k: v for k, v in b.model.state_dict().items() if v.is_floating_point()}
    assert any(not torch.equal(weights_a[k], weights_b[k]) for k in weights_a)  # other labels, other channels
    with pytest.raises(UserError, match="calibration"):
        lv.prune(_small(), ratio=0.3, importance="taylor", input_size=(3, 32, 32))


def test_ratio_mode_prunes_each_width_by_the_ratio() -> None:
    result = lv.prune(_small(), ratio=0.25, input_size=(3, 32, 32))
    assert result.ratio == 0.25 and result.target_macs is None and len(result.trials) == 1
    original = _small().stem.conv.out_channels
    assert result.model.stem.conv.out_channels == original - (original - int(original * 0.75))
    assert result.model.get_classifier().out_features == CLASSES and result.model.stem.conv.in_channels == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target_macs": 0.5, "ratio": 0.3}, "exactly one"),
    ({}, "exactly one"),
    ({"target_macs": 1.5}, "target_macs"),
    ({"ratio": 1.0}, "ratio"),
    ({"ratio": 0.3, "importance": "l3"}, "importance"),
])
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        lv.prune(_small(), **kwargs)


# ---------------------------------------------------------------------------------------------------------
# CLI


def test_cli_prunes_to_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = cli_main(["prune", "mobilenetv2_035", "--target-macs", "0.5", "--input-size", "32", "--num-classes", "5",
                   "--output", str(out)])
    assert rc == 0
    summary = json.loads((out / "prune.json").read_text())
    assert abs(summary["macs_fraction"] - 0.5) <= 0.025 and summary["model"] == "mobilenetv2_035"
    meta = read_metadata(out / "pruned.safetensors")
    assert meta["pruning"]["importance"] == "l2" and meta["structure"]["model"]["num_classes"] == 5
    model, _ = load_trained_model(out / "pruned.safetensors")
    assert count_complexity(model, (3, 32, 32)).macs == summary["macs_after"]
    assert "MACs" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["mobilenetv2_035", "--ratio", "1.5"], "--ratio 1.5"),
    (["mobilenetv2_035", "--ratio", "0.3", "--target-macs", "0.5"], "not allowed with"),
    (["mobilenetv2_035"], "required"),
    (["mobilenetv9_100", "--ratio", "0.3"], "Did you mean"),
    (["mobilenetv2_035", "--target-macs", "0.5", "--importance", "taylor"], "--data"),
    (["mobilenetv2_035", "--ratio", "0.3", "--recalibrate-bn", "2"], "--recalibrate-bn needs"),
    (["mobilenetv2_035", "--ratio", "0.3", "--recalibrate-bn", "-1"], "--recalibrate-bn -1"),
])
def test_cli_bad_input_exits_2_before_work(argv: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _cli(["prune", *argv, "--input-size", "32", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_cli_input_channels_build_a_model_by_name_or_are_checked(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--input-size C H W gives a model by name its input channels; against data or a run it must agree."""
    out = tmp_path / "grey"
    assert cli_main(["prune", "mobilenetv2_035", "--ratio", "0.3", "--input-size", "1", "32", "40",
                     "--num-classes", "5", "--output", str(out)]) == 0
    model, _ = load_trained_model(out / "pruned.safetensors")
    assert model(torch.randn(2, 1, 32, 40)).shape == (2, 5)
    capsys.readouterr()
    wrong = tmp_path / "wrong"
    assert _cli(["prune", "mobilenetv2_035", "--ratio", "0.3", "--data", "fashion_mnist_subset",
                 "--input-size", "3", "32", "32", "--output", str(wrong)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--input-size gives 3 input channels" in err and len(err.splitlines()) == 1, err
    assert _cli(["prune", str(out / "pruned.safetensors"), "--ratio", "0.3", "--input-size", "3", "32", "32",
                 "--output", str(wrong)]) == 2
    assert "but" in capsys.readouterr().err and not wrong.exists()
    assert _cli(["prune", str(tmp_path), "--ratio", "0.3", "--output", str(wrong)]) == 2  # a folder, not a run
    assert "not a model name, nor a litevision run folder" in capsys.readouterr().err and not wrong.exists()


def test_cli_refuses_an_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "prune.json").write_text("{}")
    rc = _cli(["prune", "mobilenetv2_035", "--ratio", "0.3", "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "prune.json").read_text() == "{}" and not (out / "pruned.safetensors").exists()


def _cli(argv: list[str]) -> int:
    """The exit code, whether the command returned it or argparse exited with it."""
    try:
        return cli_main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def test_cli_fine_tunes_the_pruned_network(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = cli_main(["prune", "mobilenetv3_small_075", "--target-macs", "0.5", "--importance", "taylor",
                   "--data", "fashion_mnist_subset", "--input-size", "32", "--calibration-batches", "2",
                   "--fine-tune", "quick", "--set", "sched.epochs=1", "--set", "run.max_steps=3",
                   "--set", "data.input_size=32", "--set", "run.threads=1", "--set", "run.progress=false",
                   "--output", str(out)])
    assert rc == 0
    summary = json.loads((out / "prune.json").read_text())
    assert {"original", "pruned", "fine_tuned"} <= set(summary["accuracy"])
    model, meta = load_trained_model(out / "finetune")
    structure = dict(meta["model_kwargs"]["structure"])
    assert structure.pop("pruning")["macs_fraction"] == summary["macs_fraction"]  # names the run in compare
    assert structure == read_metadata(out / "pruned.safetensors")["structure"]
    assert count_complexity(model, (1, 32, 32)).macs == summary["macs_after"]
    assert _compressed_label("m", meta) == f"m (pruned to {summary['macs_fraction']:.0%} MACs)"


def test_cli_recalibrates_batchnorm_after_pruning(tmp_path: Path) -> None:
    common = ["prune", "mobilenetv3_small_075", "--target-macs", "0.5", "--data", "fashion_mnist_subset",
              "--input-size", "32", "--batch-size", "16"]
    torch.manual_seed(0)  # the same random-init network both times
    assert cli_main([*common, "--output", str(tmp_path / "plain")]) == 0
    torch.manual_seed(0)
    assert cli_main([*common, "--recalibrate-bn", "2", "--output", str(tmp_path / "recal")]) == 0
    summary = json.loads((tmp_path / "recal" / "prune.json").read_text())
    assert summary["bn_recalibration_batches"] == 2 and "pruned" in summary["accuracy"]
    plain, _ = load_trained_model(tmp_path / "plain" / "pruned.safetensors")
    recal, _ = load_trained_model(tmp_path / "recal" / "pruned.safetensors")
    means = [(a.running_mean, b.running_mean) for a, b in zip(plain.modules(), recal.modules())
             if isinstance(a, torch.nn.BatchNorm2d)]
    assert means and not all(torch.equal(a, b) for a, b in means)  # same weights, statistics re-estimated
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), recal.parameters()))
