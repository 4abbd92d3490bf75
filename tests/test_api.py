"""Public API behaviour: registry, factory, checkpoint loading."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch
from safetensors.torch import save_file

import litevision as lv
from litevision.errors import UserError
from litevision.models import CheckpointMismatchError, CheckpointReadError


def test_list_models_pattern_sorted() -> None:
    names = lv.list_models("mobilenetv2_*")
    assert names == sorted(names) and "mobilenetv2_100" in names
    assert lv.list_models("no_such_family_*") == []


def test_miss_is_user_error_with_suggestions() -> None:
    with pytest.raises(UserError, match="mobilenetv2_100"):
        lv.create_model("mobilenetv2_1OO")


def test_none_overrides_are_dropped_and_typos_raise() -> None:
    m = lv.create_model("mobilenetv2_050", num_classes=3, drop_rate=None)
    assert m.num_classes == 3
    with pytest.raises(TypeError, match="drop_rat"):
        lv.create_model("mobilenetv2_050", drop_rat=0.1)
    with pytest.raises(TypeError):
        lv.create_model("mobilenetv2_050", out_indices=(1,))


def _model() -> torch.nn.Module:
    return lv.create_model("mobilenetv2_035", num_classes=4).eval()


@pytest.mark.parametrize("fmt", ["safetensors", "nested", "module_prefix"])
def test_load_checkpoint_formats(tmp_path, fmt: str) -> None:
    src, dst = _model(), _model()
    sd = src.state_dict()
    if fmt == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    elif fmt == "nested":
        path = tmp_path / "ckpt.pth"
        torch.save({"epoch": 3, "model": sd}, path)
    else:
        path = tmp_path / "ddp.pth"
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    lv.load_checkpoint(dst, path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))


@pytest.mark.parametrize("use_ema", [False, True])
def test_training_checkpoint_loads_the_model_unless_ema_is_asked_for(tmp_path, use_ema: bool) -> None:
    """A DeiT-style checkpoint holds both; like the official eval scripts and timm, ``model`` comes first."""
    trained, ema, dst = _model(), _model(), _model()
    path = tmp_path / "checkpoint.pth"
    torch.save({"model_ema": ema.state_dict(), "model": trained.state_dict(), "epoch": 299}, path)
    lv.load_checkpoint(dst, path, use_ema=use_ema)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), (ema if use_ema else trained)(x))
    only_ema = _model()  # the EMA is used when it is all there is
    lv.load_checkpoint(only_ema, {"state_dict_ema": ema.state_dict()})
    with torch.no_grad():
        torch.testing.assert_close(only_ema(x), ema(x))


def test_create_model_with_checkpoint_path(tmp_path) -> None:
    src = _model()
    torch.save(src.state_dict(), tmp_path / "w.pth")
    m = lv.create_model("mobilenetv2_035", num_classes=4, checkpoint_path=tmp_path / "w.pth").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), src(x))


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_checkpoint_never_executes_pickled_code(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _Evil()}, f)
    with pytest.raises(CheckpointReadError, match="weights-only.*not loaded"):
        lv.load_checkpoint(_model(), path)
    assert "pickled code ran" not in capsys.readouterr().out


def test_mismatched_checkpoint_names_keys() -> None:
    sd = _model().state_dict()
    sd.pop("head.fc.weight")
    with pytest.raises(CheckpointMismatchError, match="head.fc.weight"):
        lv.load_checkpoint(_model(), sd)


def test_missing_checkpoint_file_is_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        lv.load_checkpoint(_model(), tmp_path / "nope.pth")


def test_features_only_subset() -> None:
    fe = lv.create_model("mobilenetv2_100", features_only=True, out_indices=(1, 3))
    outs = fe(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == fe.channels() == [24, 96]
    assert fe.reductions() == [4, 16]


def test_cli_unknown_model_exits_2(capsys) -> None:
    from litevision.cli.main import main

    assert main(["info", "mobilenetv2_10"]) == 2
    assert "Did you mean" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "module", "extra"), [
    (["export", "mobilenetv3_small_075", "--format", "onnx", "--output", "{tmp}"], "onnx", "export"),
    (["eval", "{tmp}"], "matplotlib", "report"),
])
def test_a_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys, argv, module, extra) -> None:
    from litevision.cli.main import main

    monkeypatch.setitem(sys.modules, module, None)  # import fails as when the extra is not installed
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"pip install 'litevision[{extra}]'" in err and module in err
    assert not any(tmp_path.iterdir())  # refused before any work


def test_version_is_the_package_metadata_version(capsys) -> None:
    from importlib.metadata import version

    from litevision.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"litevision {version('litevision')}" == f"litevision {lv.__version__}"
