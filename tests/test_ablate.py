"""Ablation: two arms through the real trainer, deltas computed from measured numbers."""

from __future__ import annotations

import json

import pytest

import litevision as lv
from litevision.cli.main import main
from litevision.errors import UserError
from litevision.models import load_trained_model
from litevision.workflows import run_ablation

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

SMOKE = ["data.options={num_classes: 3, image_size: 16, in_chans: 1, train_size: 64, test_size: 32}",
         "data.input_size=16", "data.batch_size=16", "sched.epochs=1", "run.max_steps=2", "run.progress=false",
         "run.tensorboard=false", "data.workers=0"]


def test_ablation_without_training_counts_the_module(tmp_path) -> None:
    report = run_ablation("mobilenetv2_035", "eca", where="stages", data="synthetic", overrides=SMOKE,
                          output=tmp_path, train=False, latency_rounds=1)
    base = lv.create_model("mobilenetv2_035", num_classes=3, in_chans=1)
    eca = sum(sum(p.numel() for p in lv.create_module("eca", f["num_chs"]).parameters()) for f in base.feature_info)
    assert report.delta_params == eca
    assert report.delta_macs > 0 and report.baseline.top1 is None and report.delta_top1 is None
    assert report.baseline.latency_ms and report.variant.latency_ms
    assert len(report.variant.stitched) == len(base.feature_info)
    text = report.format()
    assert "params" in text and "+ eca" in text and "stages.0" in text


def test_ablate_cli_trains_both_arms_with_one_seed(tmp_path, capsys) -> None:
    args = ["ablate", "--model", "mobilenetv2_035", "--module", "simam", "--where", "stages.2,stages.3",
            "--data", "synthetic", "--output", str(tmp_path)]
    for item in SMOKE:
        args += ["--set", item]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "test top-1 (%)" in printed and "+ simam" in printed
    saved = json.loads((tmp_path / "mobilenetv2_035-simam" / "ablation.json").read_text())
    assert saved["baseline"]["top1"] is not None and saved["variant"]["top1"] is not None
    assert saved["delta_params"] == 0  # SimAM has no parameters
    assert saved["variant"]["model_kwargs"]["stitch"][0]["where"] == ["stages.2", "stages.3"]
    trained, _ = load_trained_model(tmp_path / "mobilenetv2_035-simam" / "with_simam")
    assert [r["module"] for r in trained.stitched] == ["simam", "simam"]
    with pytest.raises(UserError, match="already holds"):
        run_ablation("mobilenetv2_035", "simam", where=["stages.2", "stages.3"], data="synthetic", overrides=SMOKE,
                     output=tmp_path)
