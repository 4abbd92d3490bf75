"""The bad-input battery: every user mistake gets exit code 2 and one message on stderr naming the problem (and
what to do), before any work is done — no traceback, nothing written, the user's files untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from litevision.cli.main import main
from litevision.engine import load_config, train

TINY = ["--set", "data.name=synthetic", "--set", "data.options={image_size: 16, train_size: 64, test_size: 32, "
        "num_classes: 4}", "--set", "data.input_size=16", "--set", "data.batch_size=16", "--set", "run.progress=false",
        "--set", "run.tensorboard=false", "--set", "run.threads=1"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: a trained run, an existing results file, a truncated weights file, a text file."""
    work = tmp_path_factory.mktemp("work")
    cfg = load_config("quick", ["model.name=mobilenetv2_035", "data.name=synthetic", "data.input_size=16",
                                "data.options={image_size: 16, train_size: 64, test_size: 32, num_classes: 4}",
                                "data.batch_size=16", "sched.epochs=1", "run.threads=1", "run.progress=false",
                                "run.tensorboard=false", f"run.output={work}", "run.name=run"])
    train(cfg)
    (work / "existing.json").write_text('{"mine": true}')
    data = (work / "run" / "last.safetensors").read_bytes()
    (work / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (work / "notes.txt").write_text("not a folder")
    return work


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


CASES = {
    # 1. a resume that would not continue the same run
    "resume changes the batch": (["train", "--resume", "run", "--set", "data.batch_size=32"], "data.batch_size"),
    "resume changes the model": (["train", "--resume", "run", "--model", "lsnet_t"], "model.name"),
    # 3. outputs checked first
    "bench overwrites a results file": (["bench", "mobilenetv2_035", "--backends", "eager", "--output",
                                         "existing.json"], "--overwrite"),
    "eval into a file": (["eval", "run", "--output", "notes.txt"], "notes.txt is a file"),
    "export into a file": (["export", "mobilenetv2_035", "--format", "onnx", "--output", "notes.txt"], "is a file"),
    "compare into a file": (["compare", "mobilenetv2_035", "--output", "notes.txt"], "is a file"),
    "ablate into a file": (["ablate", "--model", "mobilenetv2_035", "--module", "eca", "--output", "notes.txt"],
                           "is a file"),
    "train into a file": (["train", "quick", "--output", "notes.txt", *TINY], "notes.txt"),
    # 4. a truncated weights file is named
    "eval a truncated file": (["eval", "truncated.safetensors"], "truncated.safetensors"),
    "export a truncated file": (["export", "truncated.safetensors", "--format", "onnx", "--output", "out"],
                                "truncated.safetensors"),
    "bench a truncated file": (["bench", "truncated.safetensors", "--backends", "eager"], "truncated.safetensors"),
    # 5. config values checked when the config is loaded
    "negative batch": (["train", "quick", "--set", "data.batch_size=-4", "--print-config"], "data.batch_size"),
    "unknown crop": (["train", "quick", "--set", "aug.crop=center"], "aug.crop"),
    "no such device": (["train", "quick", "--device", "gpu"], "run.device"),
    "negative lr": (["train", "quick", "--set", "optim.lr=-1"], "optim.lr"),
    "misspelled model": (["train", "quick", "--model", "mobilenetv3_smal_100", *TINY], "mobilenetv3_small_100"),
    "misspelled key": (["train", "quick", "--set", "sched.epohcs=2"], "sched.epochs"),
    # 6. compare never swaps architectures
    "compare with another model's weights": (["compare", "shufflenetv2_050", "--checkpoint", "shufflenetv2_050=run",
                                              "--data", "synthetic", "--output", "cmp"], "holds a mobilenetv2_035"),
    # the command line itself
    "bad input size": (["compare", "mobilenetv2_035", "--input-size", "0", "--output", "cmp"], "positive"),
    "unknown option": (["eval", "run", "--outptu", "x"], "--outptu"),
    "bad split": (["eval", "run", "--split", "validation"], "validation"),
    "missing run": (["eval", "no_such_run"], "no_such_run"),
    "bad data option": (["train", "quick", "--data-opt", "noequals"], "KEY=VALUE"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_user_mistake_exits_2_with_one_message_and_touches_nothing(
        case: str, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    argv, expected = CASES[case]
    monkeypatch.chdir(workdir)
    before = _snapshot(workdir)
    with pytest.raises(SystemExit) if "--outptu" in argv or "validation" in argv else _no_exit() as raised:
        rc = main(argv)
    if raised is not None:
        rc = raised.value.code
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and "error" in lines[0] and expected in lines[0], err
    assert "Traceback" not in err
    assert _snapshot(workdir) == before  # no output, no run folder, the user's files as they were


class _no_exit:  # noqa: N801 - a context manager used like pytest.raises
    value = None

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_create_model_names_a_bad_class_count() -> None:
    import litevision as lv

    with pytest.raises(TypeError, match="num_classes must be an int"):
        lv.create_model("mobilenetv2_035", num_classes="ten")


def test_an_image_folder_without_statistics_trains_with_estimated_ones(tmp_path: Path) -> None:
    """The most natural first use: ``litevision train quick --data MY_FOLDER`` (quick asks for the dataset's own
    mean/std; a folder has none, so they are estimated on a sample of its training images)."""
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    for split, n in (("train", 12), ("test", 4)):
        for c in ("cat", "dog"):
            folder = tmp_path / "imgs" / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                value = 60 if c == "cat" else 190
                pixels = (torch.rand(20, 20, generator=rng) * 40 + value).to(torch.uint8).numpy()
                Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
    cfg = load_config("quick", [f"data.name={tmp_path / 'imgs'}", "data.input_size=16", "data.batch_size=8",
                                "run.max_steps=2", "data.val_split=none", "run.progress=false",
                                "run.tensorboard=false", f"run.output={tmp_path / 'runs'}", "run.name=r"])
    result = train(cfg)
    config = (result.run_dir / "config.yaml").read_text()
    assert str(tmp_path / "imgs") in config  # stored as an absolute path: eval works from any directory
    from litevision.models import read_metadata

    meta = read_metadata(result.run_dir / "last.safetensors")
    assert 0.2 < meta["mean"][0] < 0.6 and meta["std"][0] > 0.1  # ~ (60 + 190 + 40) / 2 / 255
    shutil.rmtree(tmp_path / "runs")
