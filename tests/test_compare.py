"""compare: one test set, one input size, one metric code; report files, HTML page, binary threshold report."""

from __future__ import annotations

import base64
import csv
import json

import pytest

from helpers.report_page import PNG_MAGIC, check_html, screenshot_html
from litevision.cli.main import main
from litevision.errors import UserError
from litevision.workflows import compare as compare_mod
from litevision.workflows import compare_models, run_demo

TINY = {"data": "synthetic", "data_options": {"num_classes": 10, "image_size": 32, "train_size": 64, "test_size": 40}}
FAST = {"threads": 1, "bench_batch": 4, "warmup": 1, "iters": 3, "exporter": "legacy"}


def test_compare_trained_and_peer_models(tmp_path):
    report, paths = compare_models(
        ["mobilenetv2_035", "timm:mobilenetv3_small_050"], tmp_path, input_size=32, train=True,
        overrides=["run.max_steps=2", "data.val_split=none", "data.batch_size=16"], **TINY, **FAST,
    )
    assert [r.model for r in report.rows] == ["mobilenetv2_035", "timm:mobilenetv3_small_050"]
    for row in report.rows:
        assert row.status == "ok", row.error
        assert row.weights == "trained (quick)" and row.train_seconds > 0
        assert 0 <= row.top1 <= 100 and row.params > 0 and row.macs > 0
        assert row.latency_ms > 0 and row.throughput > 0
        assert row.exportable == "yes", row.export_note
        assert len(row.recall) == 10 and "class_9" in row.recall
    assert report.setup["input_size"] == [3, 32, 32] and report.setup["num_samples"] == 40
    # the same metric code: the per-model metrics files of litevision.engine.evaluate
    metrics = json.loads((tmp_path / "models" / "mobilenetv2_035" / "metrics.json").read_text())
    assert metrics["top1"] == pytest.approx(report.rows[0].top1)
    md = paths["markdown"].read_text()
    assert "| mobilenetv2_035 | trained (quick) |" in md and "Per-class recall" in md
    with paths["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and "recall[class_9]" in rows[0] and rows[1]["exportable"] == "yes"
    assert json.loads(paths["json"].read_text())["rows"][1]["model"] == "timm:mobilenetv3_small_050"
    for name in ("accuracy_vs_macs", "accuracy_vs_throughput"):
        assert paths[name].read_bytes().startswith(PNG_MAGIC)
    assert check_html(paths["html"]) == []
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 2 and "timm:mobilenetv3_small_050" in page


def test_binary_data_gets_the_threshold_report(tmp_path):
    report, paths = compare_models(
        ["mobilenetv2_035"], tmp_path, data="synthetic",
        data_options={"num_classes": 2, "image_size": 32, "test_size": 64, "train_size": 64}, input_size=32,
        export_check=False, **FAST,
    )
    (row,) = report.rows
    assert row.weights == "random" and row.threshold_line.startswith("th: 0.50")
    assert "T_R:" in row.threshold_line and "M_R:" in row.threshold_line and "F_R:" in row.threshold_line
    assert "Threshold report" in paths["markdown"].read_text() and "random weights" in " ".join(report.notes)
    assert row.exportable == "not checked"


def test_unknown_models_fail_early_or_are_skipped(tmp_path):
    with pytest.raises(UserError, match="Did you mean"):
        compare_models(["mobilenetv2_035", "mobilenetv2_03"], tmp_path, **FAST)
    # the bundled Fashion-MNIST subset is the default test set
    report, _ = compare_models(["mobilenetv2_035", "not_a_model"], tmp_path, input_size=32, skip_missing=True,
                               export_check=False, **FAST)
    assert [r.model for r in report.rows] == ["mobilenetv2_035"] and "not_a_model" in report.skipped[0]
    assert report.setup["num_samples"] == 1000 and "Ankle boot" in report.rows[0].recall


def test_one_failing_model_does_not_lose_the_others(tmp_path, monkeypatch):
    real = compare_mod._prepare

    def flaky(spec, *args, **kwargs):
        if spec == "mobilenetv2_050":
            raise RuntimeError("training diverged")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(compare_mod, "_prepare", flaky)
    report, paths = compare_models(["mobilenetv2_050", "mobilenetv2_035"], tmp_path, input_size=32,
                                   export_check=False, **TINY, **FAST)
    assert [r.status for r in report.rows] == ["failed", "ok"] and "training diverged" in report.rows[0].error
    assert "failed: RuntimeError: training diverged" in paths["markdown"].read_text()
    assert check_html(paths["html"]) == []


def test_checkpoints_from_a_previous_run_are_reused(tmp_path):
    first, _ = compare_models(["mobilenetv2_035"], tmp_path / "a", input_size=32, train=True,
                              overrides=["run.max_steps=1", "data.val_split=none"], export_check=False, **TINY, **FAST)
    run_dir = tmp_path / "a" / "runs" / "mobilenetv2_035"
    again, _ = compare_models([str(run_dir)], tmp_path / "b", export_check=False, **TINY, **FAST)
    (row,) = again.rows
    assert row.model == "mobilenetv2_035" and row.weights.startswith("checkpoint")
    assert row.top1 == pytest.approx(first.rows[0].top1) and again.setup["input_size"] == [3, 32, 32]


def test_check_html_finds_what_breaks_a_self_contained_page(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><table><tr><td>x</td></table>"
                    "<img src='https://example.com/plot.png'>"
                    f"<img src='data:image/png;base64,{base64.b64encode(b'not a png').decode()}'></body></html>")
    problems = " ".join(check_html(page))
    assert "unbalanced" in problems and "external resource" in problems and "does not decode to a PNG" in problems


def test_demo_skips_models_that_are_not_registered(tmp_path):
    report, paths = run_demo(tmp_path, models=["mobilenetv2_035", "not_landed_yet"],
                             overrides=["run.max_steps=1", "data.input_size=32"], threads=1, exporter="legacy",
                             **TINY)
    assert [r.model for r in report.rows] == ["mobilenetv2_035"] and report.rows[0].status == "ok"
    assert "not_landed_yet" in report.skipped[0] and paths["html"].is_file()


def test_cli_compare_checkpoint_argument_errors(tmp_path, capsys):
    assert main(["compare", "mobilenetv2_035", "--checkpoint", "oops", "--output", str(tmp_path)]) == 2
    assert main(["compare", "mobilenetv2_035", "--checkpoint", "other=x.pth", "--output", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_html_renders_in_headless_chromium(tmp_path):
    _, paths = compare_models(["mobilenetv2_035"], tmp_path, input_size=32, export_check=False, **TINY, **FAST)
    png = screenshot_html(paths["html"], tmp_path / "page.png")
    if png is None:
        pytest.skip("no chromium installed")
    assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 10_000


def test_compare_detectors_reports_map_and_a_map_vs_latency_plot(tmp_path):
    shapes = {"data": "shapes", "data_options": {"size": 96, "train": 32, "val": 8, "test": 12}}
    report, paths = compare_models(
        ["shufflenetv2_100_nano", "ssdlite320_mobilenetv3_large"], tmp_path, input_size=96, train=True,
        recipe="detection/shapes_quick", overrides=["run.max_steps=2", "data.val_split=none", "data.batch_size=8"],
        **shapes, **FAST)
    assert report.setup["task"] == "detection" and report.setup["input_size"] == [3, 96, 96]
    for row in report.rows:
        assert row.status == "ok", row.error
        assert 0 <= row.map <= 100 and 0 <= row.map50 <= 100 and row.top1 is None
        assert row.latency_ms > 0 and row.macs > 0 and set(row.recall) == {"circle", "square", "triangle"}
        assert row.exportable == "yes", row.export_note
    metrics = json.loads((tmp_path / "models" / "shufflenetv2_100_nano" / "metrics.json").read_text())
    assert metrics["stats"]["map"] == pytest.approx(report.rows[0].map)
    md = paths["markdown"].read_text()
    assert "AP50 %" in md and "Per-class AP" in md and "top-1" not in md
    assert paths["map_vs_latency"].read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "per_class_ap.csv").is_file() and check_html(paths["html"]) == []



def test_compare_before_and_after_pruning_side_by_side(tmp_path):
    import litevision as lv
    from litevision.compress import save_pruned
    from litevision.models import data_config_from_metadata, load_trained_model

    first, _ = compare_models(["mobilenetv2_035"], tmp_path / "a", input_size=32, train=True,
                              overrides=["run.max_steps=2", "data.val_split=none"], export_check=False, **TINY, **FAST)
    run = tmp_path / "a" / "runs" / "mobilenetv2_035"
    model, meta = load_trained_model(run)
    result = lv.prune(model, target_macs=0.5, input_size=(3, 32, 32))
    pruned = save_pruned(tmp_path / "pruned.safetensors", result, model_name="mobilenetv2_035",
                         class_names=meta["class_names"], data_config=data_config_from_metadata(meta))
    report, paths = compare_models([str(run), str(pruned)], tmp_path / "b", export_check=False, ort_latency=True,
                                   **TINY, **FAST)
    before, after = report.rows
    assert before.model == "mobilenetv2_035" and after.model.startswith("mobilenetv2_035 (pruned to ")
    assert before.architecture == after.architecture == "mobilenetv2_035"
    assert after.macs < 0.55 * before.macs and after.params < before.params
    assert before.ort_latency_ms > 0 and after.ort_latency_ms > 0
    assert "onnxruntime ms" in paths["markdown"].read_text()
    assert sorted(p.name for p in (tmp_path / "b" / "models").iterdir())[1].startswith("mobilenetv2_035_pruned_to_")


def test_accuracy_vs_macs_joins_a_model_and_its_pruned_versions():
    from litevision.workflows.report import CompareReport, CompareRow, _curves

    rows = [CompareRow("m (pruned to 30% MACs)", "-", architecture="m", top1=80.0, macs=30),
            CompareRow("m", "-", architecture="m", top1=90.0, macs=100),
            CompareRow("m (pruned to 50% MACs)", "-", architecture="m", top1=88.0, macs=50),
            CompareRow("other", "-", architecture="other", top1=85.0, macs=40),
            CompareRow("broken", "-", status="failed", architecture="m")]
    ok = [r for r in rows if r.status == "ok"]
    assert _curves(ok, lambda r: r.macs, "top1") == [[(30, 80.0), (50, 88.0), (100, 90.0)]]
    plots = CompareReport(rows, {"dataset": "d", "input_size": [3, 32, 32], "backend": "eager"}).plots()
    assert plots["accuracy_vs_macs"].startswith(b"\x89PNG")


def test_plot_labels_of_close_points_do_not_overlap():
    """A model and a lightly pruned version of it sit close together: their names go above and below."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from litevision.workflows.report import _annotate

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    points = [(11.3, 92.01, "shufflenetv2_100"), (8.0, 92.0, "shufflenetv2_100 (pruned to 71% MACs)"),
              (4.0, 90.8, "shufflenetv2_100 (pruned to 35% MACs)")]
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    ax.margins(x=0.25, y=0.15)
    fig.tight_layout()
    _annotate(fig, ax, points)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert [t.get_text() for t in ax.texts] == [p[2] for p in points]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)
