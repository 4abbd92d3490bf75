"""Hyperspectral pipeline (splits, train-only PCA, lazy padded patches), HSI metrics, maps, deterministic
evaluation and short HybridSN runs through the one trainer (the hyperspectral task), on a small synthetic scene."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import litevision as lv
from litevision.data import build_dataset
from litevision.data.hyperspectral import (
    PCA,
    PatchDataset,
    Scene,
    build_bundle,
    disjoint_split,
    pad_cube,
    random_split,
)
from litevision.engine import evaluate_checkpoint, load_config, predict_logits, train
from litevision.engine.hsi_metrics import (
    average_accuracy,
    cohen_kappa,
    confusion_matrix,
    hsi_report,
    label_map,
    overall_accuracy,
    per_class_accuracy,
    save_classification_maps,
)
from litevision.engine.tasks import HyperspectralTask
from litevision.errors import UserError
from litevision.workflows import run_hsi_experiment

H, W, BANDS, CLASSES = 24, 20, 16, 3


def _scene(seed: int = 0) -> Scene:
    """Three classes in vertical bands of fields, a few unlabelled pixels, class-specific spectra + noise."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((H, W), dtype=np.int64)
    labels[:, :7], labels[:, 7:14], labels[:, 14:] = 1, 2, 3
    labels[rng.random((H, W)) < 0.1] = 0
    signatures = rng.normal(size=(CLASSES + 1, BANDS)) * 3
    cube = signatures[labels] + rng.normal(size=(H, W, BANDS))
    return Scene(cube.astype(np.float32), labels, ("a", "b", "c"), "synthetic")


def test_random_split_is_stratified_disjoint_and_seeded() -> None:
    labels = _scene().labels
    split = random_split(labels, 0.3, seed=1)
    assert not set(split.train) & set(split.test)
    assert sorted(np.concatenate([split.train, split.test])) == list(np.flatnonzero(labels.ravel() > 0))
    for k in range(1, CLASSES + 1):
        n, n_train = (labels == k).sum(), (labels.ravel()[split.train] == k).sum()
        assert abs(n_train - 0.3 * n) <= 1
    again, other = random_split(labels, 0.3, seed=1), random_split(labels, 0.3, seed=2)
    assert np.array_equal(split.train, again.train) and not np.array_equal(split.train, other.train)


@pytest.mark.parametrize("block_size", [4, 6])
def test_disjoint_split_never_shares_a_block(block_size: int) -> None:
    labels = _scene().labels
    split = disjoint_split(labels, 0.3, seed=0, block_size=block_size)
    rows, cols = np.divmod(np.arange(H * W), W)
    block = (rows // block_size) * (-(-W // block_size)) + cols // block_size
    assert not set(block[split.train]) & set(block[split.test])
    assert len(split.train) + len(split.test) == (labels > 0).sum()
    for k in range(1, CLASSES + 1):  # every class is on both sides, near the requested ratio
        frac = (labels.ravel()[split.train] == k).sum() / (labels == k).sum()
        assert 0.2 < frac < 0.6


def test_pca_matches_sklearn_and_uses_training_pixels_only() -> None:
    from sklearn.decomposition import PCA as SkPCA

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) + 5
    ours = PCA.fit(x, 4).transform(x)
    ref = SkPCA(4, whiten=True).fit_transform(x)
    signs = np.sign((ours * ref).sum(0))
    np.testing.assert_allclose(ours, ref * signs, atol=1e-4)

    scene = _scene()
    bundle = build_bundle(scene, n_components=5, patch_size=5, seed=0)
    test_idx = bundle.test.positions[:, 0] * W + bundle.test.positions[:, 1]
    changed = scene.cube.copy().reshape(H * W, BANDS)
    changed[test_idx] += 1000.0  # test spectra must not move the basis
    other = build_bundle(Scene(changed.reshape(H, W, BANDS), scene.labels, scene.class_names), n_components=5,
                         patch_size=5, seed=0)
    r, c = bundle.train.positions.T
    m = 2  # padding margin: padded (row + m, col + m) holds scene pixel (row, col)
    before, after = bundle.extra["padded_cube"], other.extra["padded_cube"]
    torch.testing.assert_close(after[:, r + m, c + m], before[:, r + m, c + m])


def test_patches_are_centred_and_zero_padded() -> None:
    cube = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3) + 1  # (H, W, bands), no zeros inside
    padded = pad_cube(cube, 2)
    assert padded.shape == (3, 9, 8)
    positions = np.array([[0, 0], [2, 1], [4, 3]])
    ds = PatchDataset(padded, positions, np.array([0, 1, 2]), patch_size=5)
    reference = np.pad(cube, ((2, 2), (2, 2), (0, 0)))
    for i, (r, c) in enumerate(positions):
        patch, label = ds[i]
        assert patch.shape == (1, 3, 5, 5) and patch.dtype == torch.float32 and label == i
        expected = reference[r:r + 5, c:c + 5].transpose(2, 0, 1)
        np.testing.assert_array_equal(patch[0].numpy(), expected)
        np.testing.assert_array_equal(patch[0, :, 2, 2].numpy(), cube[r, c])  # centre = the pixel itself
    corner, _ = ds[0]
    assert corner[0, :, :2].abs().sum() == 0 and corner[0, :, :, :2].abs().sum() == 0
    corner[...] = -1  # a patch is a copy: the cube is untouched
    assert padded.min() == 0
    with pytest.raises(UserError):
        PatchDataset(padded, positions, np.zeros(3), patch_size=4)


def test_metrics_match_sklearn() -> None:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score, recall_score

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 400)
    y_pred = np.where(rng.random(400) < 0.7, y_true, rng.integers(0, 5, 400))
    cm = confusion_matrix(y_true, y_pred, 5)
    assert overall_accuracy(cm) == pytest.approx(accuracy_score(y_true, y_pred))
    assert average_accuracy(cm) == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert cohen_kappa(cm) == pytest.approx(cohen_kappa_score(y_true, y_pred))
    np.testing.assert_allclose(per_class_accuracy(cm), recall_score(y_true, y_pred, average=None))
    report = hsi_report(y_true, y_pred, list("abcde"))
    assert report["num_test_pixels"] == 400 and len(report["per_class"]) == 5
    missing = hsi_report(np.array([0, 0, 1]), np.array([0, 1, 1]), ["x", "y", "z"])  # class z absent
    assert missing["per_class"][2]["accuracy"] is None and missing["aa"] == pytest.approx(0.75)


def test_label_map_and_png(tmp_path) -> None:
    positions = np.array([[0, 0], [1, 2]])
    m = label_map((2, 3), positions, np.array([4, 0]))
    assert m.tolist() == [[5, 0, 0], [0, 0, 1]]
    from PIL import Image

    path = save_classification_maps(tmp_path / "maps" / "m.png", m, m, [f"c{i}" for i in range(5)], "t")
    with Image.open(path) as img:
        assert img.size[0] > img.size[1] > 100


def test_registered_datasets_from_files(tmp_path) -> None:
    from scipy.io import savemat

    scene = _scene()
    np.save(tmp_path / "cube.npy", scene.cube)
    savemat(tmp_path / "gt.mat", {"gt": scene.labels.astype(np.uint8)})
    bundle = build_dataset("hyperspectral", cube=str(tmp_path / "cube.npy"), ground_truth=str(tmp_path / "gt.mat"),
                           n_components=6, patch_size=7, split="disjoint", block_size=6)
    x, y = bundle.train[0]
    assert bundle.kind == "tensor" and bundle.in_chans == 1 and bundle.num_classes == CLASSES
    assert x.shape == (1, 6, 7, 7) and x.dtype == torch.float32 and 0 <= y < CLASSES
    assert len(bundle.train) + len(bundle.test) == (scene.labels > 0).sum()
    with pytest.raises(UserError, match="ground truth"):
        build_dataset("hyperspectral", cube=str(tmp_path / "cube.npy"), ground_truth=str(tmp_path / "cube.npy"))
    with pytest.raises(TypeError):
        build_dataset("indian_pines", splitt="random")


def test_indian_pines_loads_with_paper_protocol() -> None:
    bundle = build_dataset("indian_pines", n_components=30, patch_size=25)
    assert bundle.num_classes == 16 and bundle.extra["scene_shape"] == (145, 145)
    assert len(bundle.train) + len(bundle.test) == 10249
    assert abs(len(bundle.train) / 10249 - 0.3) < 0.01
    x, _ = bundle.test[len(bundle.test) - 1]
    assert x.shape == (1, 30, 25, 25)


def _small_model(**kw) -> torch.nn.Module:
    return lv.create_model("hybridsn", num_classes=CLASSES, bands=13, patch_size=9, **kw)


def test_evaluation_is_deterministic() -> None:
    bundle = build_bundle(_scene(), n_components=13, patch_size=9, seed=0)
    model = _small_model().train()  # inference must switch dropout off by itself
    first = predict_logits(model, bundle.test, batch_size=32).argmax(1).numpy()
    second = predict_logits(model, bundle.test, batch_size=7).argmax(1).numpy()
    assert np.array_equal(first, second) and model.training
    with torch.no_grad():
        logits = model.eval()(torch.stack([bundle.test[i][0] for i in range(len(bundle.test))]))
    assert np.array_equal(first, logits.argmax(1).numpy())


def test_hybridsn_options_and_bn_fusion() -> None:
    with pytest.raises(ValueError, match="too small"):
        lv.create_model("hybridsn", patch_size=7)
    with pytest.raises(ValueError, match="drop_path_rate"):
        lv.create_model("hybridsn", drop_path_rate=0.1)
    model = _small_model(norm=True)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.randn(2, 1, 13, 9, 9)
    with torch.no_grad():
        ref = model(x)
        fused = lv.fuse_model(model)
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
        torch.testing.assert_close(fused(x), ref, rtol=1e-4, atol=1e-4)
    assert lv.count_complexity(_small_model(), (1, 13, 9, 9)).macs > 0


def _scene_config(tmp_path, *overrides: str):  # noqa: ANN202
    """The paper's recipe pointed at the synthetic scene saved as .npy files (13 PCA bands, 9x9 patches)."""
    scene = _scene()
    np.save(tmp_path / "cube.npy", scene.cube)
    np.save(tmp_path / "gt.npy", scene.labels)
    options = {"cube": str(tmp_path / "cube.npy"), "ground_truth": str(tmp_path / "gt.npy"), "n_components": 13,
               "patch_size": 9}
    return load_config("hybridsn_indian_pines", [
        "data.name=hyperspectral", f"data.options={json.dumps(options)}", "sched.epochs=1", "data.batch_size=64",
        f"run.output={tmp_path / 'runs'}", "run.name=r", "run.progress=false", "run.tensorboard=false", *overrides])


def test_the_paper_recipe_runs_through_the_shared_trainer(tmp_path) -> None:
    """Inverse-time decay from the recipe, the model's bands / patch size from the data, the hyperspectral task's
    report (OA / AA / kappa, class map), and ``litevision eval`` scoring the run on its own test pixels."""
    cfg = _scene_config(tmp_path, "sched.epochs=2")
    assert cfg.sched.name == "inverse_time" and cfg.sched.decay_rate == 1e-6 and "bands" not in cfg.model.kwargs
    result = train(cfg)
    m = result.metrics
    assert m["task"] == "hyperspectral" and 0 <= m["test_oa"] <= 1 and {"test_aa", "test_kappa"} <= set(m)
    assert (result.run_dir / "eval" / "class_map.png").is_file()
    lr = [json.loads(line)["lr"] for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    updates = m["updates"]
    assert lr[-1] == pytest.approx(1e-3 / (1 + 1e-6 * updates))  # Keras' decay, per update
    report = evaluate_checkpoint(result.run_dir, out_dir=tmp_path / "again")
    assert isinstance(report.oa, float) and report.num_test_pixels == json.loads(
        (result.run_dir / "results.json").read_text())["test_report"]["num_test_pixels"]
    assert report.oa == pytest.approx(m["test_oa"]) and (tmp_path / "again" / "class_map.png").is_file()
    with pytest.raises(UserError, match="contradicts the data"):
        train(_scene_config(tmp_path, "model.kwargs={bands: 30}", "run.name=bad"))


def test_reproduce_writes_result_and_map_and_resumes(tmp_path) -> None:
    cfg = _scene_config(tmp_path, "sched.epochs=2")
    result = run_hsi_experiment(cfg, tmp_path / "out", "run")
    saved = json.loads((tmp_path / "out" / "run.json").read_text())
    assert saved["metrics"]["oa"] == result["metrics"]["oa"] and (tmp_path / "out" / "run_map.png").is_file()
    assert [row["epoch"] for row in saved["history"]] == [1, 2] and saved["protocol"]["schedule"] == "inverse_time"
    assert saved["split"]["train"] > 0 and saved["protocol"]["batch_size"] == 64
    # the finished run folder is resumed (nothing left to train), so the same weights give the same metrics
    again = run_hsi_experiment(_scene_config(tmp_path, "sched.epochs=2"), tmp_path / "out", "run")
    assert again["metrics"] == result["metrics"]


def test_hyperspectral_task_is_chosen_by_the_dataset() -> None:
    bundle = build_bundle(_scene(), n_components=13, patch_size=9, seed=0)
    assert bundle.task == "hyperspectral"
    task = HyperspectralTask(bundle, HyperspectralTask.resolve_data_config(bundle, "hybridsn"))
    assert task.model_kwargs() == {"bands": 13, "patch_size": 9} and task.data_config.input_size == (1, 13, 9, 9)
    assert task.data_config.norm_source == "none"
