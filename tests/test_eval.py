"""Evaluation: metrics against scikit-learn, the seed-002 threshold report, threshold modes, report files, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from litevision.cli.main import main as cli_main
from litevision.engine import ThresholdOptions, compute_report, evaluate, load_config, train
from litevision.errors import UserError


def _binary_logits(scores: np.ndarray) -> torch.Tensor:
    """Two-class logits whose softmax gives class 1 the probability ``scores``."""
    p = torch.as_tensor(scores, dtype=torch.float64).clamp(1e-9, 1 - 1e-9)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1).float()


def test_multiclass_metrics_match_sklearn() -> None:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 300)
    logits = torch.as_tensor(rng.normal(size=(300, 7)) + 2.0 * np.eye(7)[y], dtype=torch.float32)
    r = compute_report(logits, y, [f"c{i}" for i in range(7)])
    pred = logits.argmax(1).numpy()
    assert r.top1 == pytest.approx(100 * (pred == y).mean())
    assert r.top5 == pytest.approx(100 * top_k_accuracy_score(y, logits.numpy(), k=5))
    assert r.confusion == confusion_matrix(y, pred).tolist()
    p, rec, f1, support = precision_recall_fscore_support(y, pred, zero_division=0)
    assert [c.precision for c in r.per_class] == pytest.approx(100 * p)
    assert [c.recall for c in r.per_class] == pytest.approx(100 * rec)
    assert [c.f1 for c in r.per_class] == pytest.approx(100 * f1)
    assert [c.support for c in r.per_class] == support.tolist()
    assert r.loss == pytest.approx(float(nn.functional.cross_entropy(logits, torch.as_tensor(y))))
    assert r.threshold is None and compute_report(logits[:, :4], y % 4, list("abcd")).top5 is None


def test_threshold_report_line_in_seed_format() -> None:
    # 8 positives ("True") and 4 negatives ("False"); at th 0.38: 7/8 positives and 3/4 negatives right
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.2, 0.1, 0.2, 0.39, 0.3])
    y = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    r = compute_report(_binary_logits(scores), y, ["False", "True"],
                       threshold=ThresholdOptions(mode="fixed", threshold=0.38, task="QA_dirt"))
    assert r.threshold.line() == "th: 0.38 QA_dirt(True:8, False:4) T_R:83.333 M_R:87.500 F_R:75.000"
    assert len(r.sweep) == 101 and r.sweep[38]["threshold"] == pytest.approx(0.38)
    # positive class chosen by name; counts follow it
    neg = compute_report(_binary_logits(scores), y, ["False", "True"],
                         threshold=ThresholdOptions(threshold=0.5, positive_class="False", task="t"))
    assert neg.threshold.line().startswith("th: 0.50 t(False:4, True:8)")


def test_threshold_modes() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(200, int), np.zeros(100, int)]
    scores = np.clip(np.where(y == 1, rng.normal(0.65, 0.15, 300), rng.normal(0.35, 0.15, 300)), 0, 1)
    logits = _binary_logits(scores)
    balanced = compute_report(logits, y, ["neg", "pos"], threshold=ThresholdOptions(mode="balanced"))
    best = max(row["balanced_accuracy"] for row in balanced.sweep)
    assert balanced.threshold.balanced_accuracy == pytest.approx(best)
    target = compute_report(logits, y, ["neg", "pos"],
                            threshold=ThresholdOptions(mode="recall", target_recall=0.98, recall_class="pos"))
    t = target.threshold
    assert t.positive_recall >= 98.0
    # the highest threshold keeping the target: one step up loses it
    higher = [row for row in target.sweep if row["threshold"] > t.threshold + 1e-9]
    assert higher[0]["positive_recall"] < 98.0 or higher[0]["negative_recall"] <= t.negative_recall
    neg_target = compute_report(logits, y, ["neg", "pos"],
                                threshold=ThresholdOptions(mode="recall", target_recall=99, recall_class="neg"))
    assert neg_target.threshold.negative_recall >= 99.0
    with pytest.raises(UserError, match="target recall"):
        compute_report(logits, y, ["neg", "pos"], threshold=ThresholdOptions(mode="recall"))
    with pytest.raises(UserError, match="not a class"):
        compute_report(logits, y, ["neg", "pos"], threshold=ThresholdOptions(positive_class="cat"))


def test_report_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 64)
    r = compute_report(_binary_logits(np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, 64), 0, 1)), y,
                       ["ok", "dirty"], meta={"dataset": "cams"})
    paths = r.save(tmp_path)
    assert {"json", "per_class", "confusion_csv", "sweep", "confusion_png", "roc_png", "pr_png"} <= set(paths)
    assert all(p.stat().st_size > 0 for p in paths.values())
    data = json.loads(paths["json"].read_text())
    assert data["threshold"]["line"].startswith("th: 0.50 cams(dirty:")
    with open(paths["confusion_csv"]) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true \\ predicted", "ok", "dirty"] and sum(int(v) for row in rows[1:] for v in row[1:]) == 64
    with open(paths["sweep"]) as f:
        assert len(list(csv.DictReader(f))) == 101


def test_evaluate_runs_a_model_over_a_dataset() -> None:
    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], dim=1)

    data = [(torch.full((1, 4, 4), v), int(v < 0)) for v in (1.0, 2.0, -1.0, -3.0, 0.5)]
    r = evaluate(Fixed(), data, class_names=["a", "b"], batch_size=2)
    assert r.num_samples == 5 and r.top1 == 100.0 and r.threshold is not None


def test_eval_cli_on_a_trained_two_class_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config("quick", [
        "model.name=mobilenetv2_035", "data.name=synthetic", "data.input_size=16", "data.batch_size=16",
        "data.options={image_size: 16, train_size: 32, test_size: 24, num_classes: 2}", "data.workers=0",
        "sched.epochs=1", "run.threads=1", f"run.output={tmp_path}", "run.name=bin", "run.progress=false"])
    run = train(cfg).run_dir
    capsys.readouterr()
    out = tmp_path / "report"
    assert cli_main(["eval", str(run), "--out", str(out), "--threshold-mode", "balanced", "--task", "QA_dirt",
                     "--positive-class", "class_1"]) == 0
    printed = capsys.readouterr().out
    assert "th: " in printed and "QA_dirt(class_1:12, class_0:12) T_R:" in printed
    for name in ("metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png", "threshold_sweep.csv",
                 "roc.png", "pr.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["dataset"] == "synthetic" and metrics["threshold"]["mode"] == "balanced"
    assert cli_main(["eval", str(run / "last.safetensors"), "--data", "digits", "--no-plots"]) == 2
    assert "2 classes but digits has 10" in capsys.readouterr().err


def test_roc_and_pr_curves_match_scikit_learn() -> None:
    """The ROC / PR curves behind roc.png and pr.png (computed without scikit-learn) give its areas."""
    metrics = pytest.importorskip("sklearn.metrics")
    from litevision.engine.metrics import _area, precision_recall_curve, roc_curve

    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    s = np.round(rng.random(300) + 0.3 * y, 2)  # ties included
    fpr, tpr = roc_curve(y, s)
    ref_fpr, ref_tpr, _ = metrics.roc_curve(y, s, drop_intermediate=False)
    assert _area(fpr, tpr) == pytest.approx(metrics.auc(ref_fpr, ref_tpr))
    precision, recall = precision_recall_curve(y, s)
    ref_p, ref_r, _ = metrics.precision_recall_curve(y, s)
    assert _area(recall, precision) == pytest.approx(metrics.auc(ref_r, ref_p))
