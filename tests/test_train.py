"""Training: smoke run, exact resume after SIGKILL, NaN stop, config errors, recipes, distillation, DDP."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.resume import kill_resume_and_reference
from litevision.cli.main import main as cli_main
from litevision.data import eval_dataset, list_datasets, load_bundle
from litevision.engine import NonFiniteLossError, evaluate, list_recipes, load_config, train
from litevision.engine import trainer as trainer_mod
from litevision.engine.checkpoint import CheckpointStore, load_state
from litevision.engine.config import ConfigError, find_recipe
from litevision.engine.tasks import DistillationLoss
from litevision.errors import UserError
from litevision.models import data_config_from_metadata, list_models, load_trained_model

REPO = Path(__file__).resolve().parents[1]


def tiny(tmp_path: Path, name: str, *extra: str) -> list[str]:
    """Overrides for a seconds-long run: 4-class 16x16 synthetic data, MobileNetV2-0.35, one thread."""
    return [
        "model.name=mobilenetv2_035", "data.name=synthetic", "data.input_size=16", "data.batch_size=16",
        "data.options={image_size: 16, train_size: 64, test_size: 32, num_classes: 4}", "data.workers=0",
        "sched.epochs=2", "run.threads=1", "run.log_every=1", f"run.output={tmp_path}", f"run.name={name}",
        "run.progress=false", *extra,
    ]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> trainer_mod.RunResult:
    tmp = tmp_path_factory.mktemp("runs")
    cfg = load_config("quick", tiny(tmp, "tiny", "optim.lr=null", "optim.lr_base=0.001", "optim.lr_base_size=512",
                                    "run.checkpoint_every=3"))
    return train(cfg)


def test_smoke_run_writes_a_complete_run_folder(tiny_run: trainer_mod.RunResult) -> None:
    run = tiny_run.run_dir
    for name in ("config.yaml", "log.csv", "log.jsonl", "results.json", "last.json", "best.safetensors",
                 "last.safetensors", "eval/metrics.json", "eval/confusion_matrix.png"):
        assert (run / name).is_file(), name
    m = tiny_run.metrics
    assert m["updates"] == 8 and m["epochs"] == 2 and m["global_batch"] == 16
    assert m["lr"] == pytest.approx(1e-3 * 16 / 512)  # lr_base scaled linearly by the global batch
    assert json.loads((run / "results.json").read_text())["test_top1"] == m["test_top1"]
    rows = (run / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,step,lr,train_loss,val_top1")
    steps = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if s["kind"] == "step"] == list(range(1, 9))
    # the resolved config is complete and reloadable
    assert load_config(run / "config.yaml").model.name == "mobilenetv2_035"
    # weights rebuild with their preprocessing and reproduce the run's test accuracy
    model, meta = load_trained_model(run)
    assert meta["class_names"] == [f"class_{i}" for i in range(4)] and meta["input_size"] == [3, 16, 16]
    bundle = load_bundle("synthetic", {"image_size": 16, "train_size": 64, "test_size": 32, "num_classes": 4})
    test_set = eval_dataset(bundle, data_config_from_metadata(meta))
    report = evaluate(model, test_set, class_names=meta["class_names"])
    assert report.top1 == pytest.approx(m["test_top1"])
    # trainer state is plain data: loads with weights_only=True
    _, state_path, step = CheckpointStore(run).latest()
    assert load_state(state_path)["step"] == step == 8


def test_distillation_bf16_channels_last_accumulation(tiny_run: trainer_mod.RunResult, tmp_path: Path) -> None:
    cfg = load_config("quick", tiny(tmp_path, "student", "distill.type=hard", f"distill.teacher={tiny_run.run_dir}",
                                    "run.max_steps=2", "optim.accum_steps=2", "data.val_split=none", "run.amp=bf16",
                                    "run.channels_last=true"))
    result = train(cfg)
    assert result.metrics["updates"] == 2 and result.best_checkpoint is None
    cfg = load_config("quick", tiny(tmp_path, "student2", "distill.type=hard", "distill.teacher=mobilenetv2_035"))
    with pytest.raises(UserError, match="teacher_checkpoint"):
        train(cfg)


def test_auxiliary_loss_weight_trains_lcnet_router_balance(tmp_path: Path) -> None:
    args = tiny(tmp_path, "aux", "model.name=lcnet_t", "data.input_size=32", "data.options={image_size: 32, "
                "train_size: 16, test_size: 8, num_classes: 4}", "data.batch_size=8", "run.max_steps=2",
                "data.val_split=none", "model.kwargs={widths: [16, 16, 16, 16], depths: [1, 1, 1, 1], stem_chs: 8}")
    plain = train(load_config("quick", args))
    balanced = train(load_config("quick", [*args, "model.aux_loss_weight=0.5", "run.name=aux2"]))
    assert plain.metrics["updates"] == balanced.metrics["updates"] == 2
    first = [json.loads(line) for line in (balanced.run_dir / "log.jsonl").read_text().splitlines()]
    base = [json.loads(line) for line in (plain.run_dir / "log.jsonl").read_text().splitlines()]
    # same seed and data: only the added balance term (≥ 1 per DTConv, 4 of them) separates the two losses
    assert first[0]["loss"] > base[0]["loss"] + 0.5 * 4 * 0.9
    with pytest.raises(UserError, match="no auxiliary loss"):
        train(load_config("quick", tiny(tmp_path, "aux3", "model.aux_loss_weight=0.1")))


def test_max_steps_compresses_the_schedule_to_end_with_the_run(tmp_path: Path) -> None:
    result = train(load_config("quick", tiny(tmp_path, "short", "run.max_steps=3", "sched.epochs=2",
                                             "sched.min_lr=1e-5", "sched.warmup_epochs=0")))
    steps = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines() if '"lr"' in line]
    assert result.metrics["updates"] == 3
    assert steps[-1]["lr"] == pytest.approx(1e-5, rel=1e-3)  # decayed to min_lr at the last update


def test_existing_run_needs_resume(tiny_run: trainer_mod.RunResult) -> None:
    cfg = load_config(tiny_run.run_dir / "config.yaml")
    with pytest.raises(UserError, match="--resume"):
        train(cfg, run_dir=tiny_run.run_dir)


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    forward = DistillationLoss.forward

    def poisoned(self, inputs, outputs, targets):  # noqa: ANN001, ANN202
        calls["n"] += 1
        loss = forward(self, inputs, outputs, targets)
        return loss * float("nan") if calls["n"] == 6 else loss

    monkeypatch.setattr(DistillationLoss, "forward", poisoned)
    cfg = load_config("quick", tiny(tmp_path, "nan", "run.checkpoint_every=2"))
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 1, update 6.*step-000000004"):
        train(cfg)
    weights, state, step = CheckpointStore(tmp_path / "nan").latest()
    assert step == 4 and load_state(state)["step"] == 4
    assert all(torch.isfinite(t).all() for t in load_file(weights).values())
    assert cli_main(["train", "--resume", str(tmp_path / "nan"), "--set", "run.max_steps=5"]) == 0


def test_config_errors_name_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'optim\.lrr'.*Did you mean: optim\.lr"):
        load_config("quick", ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="unknown config section 'optimizer'"):
        load_config(None, ["optimizer.lr=1"])
    with pytest.raises(ConfigError, match=r"data\.batch_size='big': expected int"):
        load_config(None, ["data.batch_size=big"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.lr"])
    cfg = load_config(None, ["model.kwargs.drop_path_rate=1e-2", "aug.scale=[0.5, 1]", "optim.clip_grad=null"])
    assert cfg.model.kwargs == {"drop_path_rate": 0.01} and cfg.aug.scale == (0.5, 1.0) and cfg.optim.clip_grad is None
    assert cli_main(["train", "quick", "--set", "sched.epohcs=3"]) == 2
    assert "sched.epohcs" in capsys.readouterr().err
    with pytest.raises(UserError, match="recipe not found"):
        find_recipe("no_such_recipe")


def test_recipe_file_with_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  lr: 0.1\n  wieght_decay: 0.1\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: unknown config key 'optim\.wieght_decay'.*optim\.weight_decay"):
        load_config(path)


@pytest.mark.parametrize("recipe", sorted(set(list_recipes())))
def test_every_recipe_resolves(recipe: str) -> None:
    cfg = load_config(recipe)
    assert cfg.model.name in list_models() or ":" in cfg.model.name, cfg.model.name
    assert cfg.data.name in list_datasets()


def test_seed_recipes_match_the_papers() -> None:
    lcnet = load_config("lcnet/lcnet_t")
    assert (lcnet.optim.opt, lcnet.optim.lr, lcnet.optim.weight_decay, lcnet.sched.name) == ("adamw", 1e-3, 1e-3,
                                                                                            "cosine")
    for variant, wd in (("t", 0.025), ("s", 0.025), ("b", 0.05)):
        c = load_config(f"lsnet/lsnet_{variant}")
        assert (c.optim.opt, c.optim.eps, c.optim.lr, c.optim.lr_base, c.optim.lr_base_size) == ("adamw", 1e-8, None,
                                                                                                 1e-3, 512)
        assert (c.optim.weight_decay, c.optim.clip_grad, c.optim.clip_mode) == (wd, 0.02, "agc")
        assert (c.sched.warmup_lr, c.sched.min_lr, c.ema.enabled, c.aug.smoothing) == (1e-6, 1e-5, True, 0.1)
        assert c.aug.rand_augment and c.aug.mixup > 0 and c.aug.cutmix > 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "litevision.cli.main", "train", "quick", *args]


def test_resume_after_sigkill_is_bitwise_identical(tmp_path: Path) -> None:
    """A run killed with SIGKILL mid-epoch and resumed ends with exactly the weights of an uninterrupted run,
    with every source of randomness on: RandAugment, random erasing, mixup/cutmix, drop-path, EMA, AGC,
    gradient accumulation."""
    _kill_resume_and_compare(tmp_path, "aug.rand_augment=rand-m9-mstd0.5", "aug.re_prob=0.25", "aug.mixup=0.8",
                             "aug.cutmix=1.0", "aug.smoothing=0.1", "ema.enabled=true", "ema.decay=0.9",
                             "optim.clip_grad=0.02", "optim.clip_mode=agc", "model.kwargs.drop_path_rate=0.1",
                             "optim.accum_steps=2")


def test_resume_with_a_teacher_is_bitwise_identical(tiny_run: trainer_mod.RunResult, tmp_path: Path) -> None:
    """Distillation keeps exact resume: the teacher is rebuilt from its run folder, frozen, in eval mode."""
    _kill_resume_and_compare(tmp_path, "distill.type=soft", f"distill.teacher={tiny_run.run_dir}",
                             "distill.alpha=0.5", "distill.tau=2.0", "aug.mixup=0.8")


def _kill_resume_and_compare(tmp_path: Path, *extra: str) -> None:
    sets = tiny(tmp_path, "x", "sched.epochs=3", "run.deterministic=true", "run.checkpoint_every=2", *extra)
    args = [a for s in sets if not s.startswith("run.name=") for a in ("--set", s)]
    kill_resume_and_reference(tmp_path, _cli(*args))
    last_checkpoint = sorted((tmp_path / "reference" / "checkpoints").glob("step-*.safetensors"))[-1]
    for name in ("last.safetensors", f"checkpoints/{last_checkpoint.name}"):
        a, b = load_file(tmp_path / "reference" / name), load_file(tmp_path / "killed" / name)
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{name}: {different[:5]}"
    def epoch_rows(run: str) -> list[tuple]:
        with open(tmp_path / run / "log.csv") as f:
            return [(r["epoch"], r["step"], r["train_loss"], r.get("ema_val_top1") or r["val_top1"])
                    for r in csv.DictReader(f)]

    assert epoch_rows("killed") == epoch_rows("reference")  # the same epoch rows, none duplicated
    ref_log = (tmp_path / "reference" / "log.jsonl").read_text().splitlines()
    res_log = (tmp_path / "killed" / "log.jsonl").read_text().splitlines()
    assert len(ref_log) == len(res_log)  # the log was cut back to the checkpoint, not duplicated


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path: Path) -> None:
    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("torchrun not installed next to python")
    sets = tiny(tmp_path, "ddp", "data.batch_size=8")
    args = [a for s in sets for a in ("--set", s)]
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m",
           "litevision.cli.main", "train", "quick", *args]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert result["world_size"] == 2 and result["global_batch"] == 16 and result["updates"] == 8
    assert result["test_report"]["num_samples"] == 32  # sharded evaluation gathers every test sample once
    assert proc.stderr.count("training done in") == 1  # rank-0 logging


def test_batchnorm_recalibration_matches_batch_statistics(tmp_path: Path) -> None:
    from litevision.engine.batchnorm import recalibrate_batchnorm

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5))
    data = [torch.randn(8, 3, 6, 6) * 3 + 1 for _ in range(4)]
    model.train()
    assert recalibrate_batchnorm(model, [(x, None) for x in data]) == 4
    assert model.training and model[1].momentum == 0.1  # mode and momentum restored
    with torch.no_grad():
        feats = torch.cat([model[0](x) for x in data])
    torch.testing.assert_close(model[1].running_mean, feats.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    result = train(load_config("quick", tiny(tmp_path, "recal", "run.max_steps=2", "run.bn_recalibration=2",
                                             "data.val_split=none")))
    assert result.metrics["updates"] == 2
