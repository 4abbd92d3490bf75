"""Datasets, transforms and loaders: bundled data, image folders with bad files, reproducible augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from litevision.data import build_dataset, data_config_for, eval_dataset, list_datasets, load_bundle, train_dataset
from litevision.data._image import BadImageError
from litevision.data.fashion_mnist import BUNDLED, DEBIAN_DIR, read_idx
from litevision.data.loader import ResumableSampler, ShardSampler, iterate, make_loader
from litevision.data.transforms import AugmentConfig
from litevision.errors import UserError


def test_registered_datasets() -> None:
    assert {"fashion_mnist", "fashion_mnist_subset", "digits", "synthetic", "folder"} <= set(list_datasets())


def test_bundled_fashion_mnist_subset_is_stratified_and_licensed() -> None:
    b = build_dataset("fashion_mnist_subset")
    assert (len(b.train), len(b.test), b.num_classes, b.in_chans) == (5000, 1000, 10, 1)
    assert b.train.images.dtype == np.uint8 and b.train.images.shape[1:] == (28, 28)
    assert np.bincount(b.train.labels).tolist() == [500] * 10
    assert np.bincount(b.test.labels).tolist() == [100] * 10
    img, label = b.train[0]
    assert img.mode == "L" and img.size == (28, 28) and 0 <= label < 10
    assert BUNDLED.stat().st_size < 5e6
    licence = (BUNDLED.parent / "LICENSE-fashion-mnist.txt").read_text()
    assert "MIT" in licence and "Zalando" in licence


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_full_fashion_mnist_matches_subset() -> None:
    b = build_dataset("fashion_mnist")
    assert (len(b.train), len(b.test)) == (60000, 10000)
    with np.load(BUNDLED) as f:  # the subset is a verbatim sample of the full files
        idx = f["test_index"]
        assert np.array_equal(b.test.images[idx], f["x_test"])
        assert np.array_equal(b.test.labels[idx], f["y_test"])


def test_full_fashion_mnist_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="dataset-fashion-mnist"):
        build_dataset("fashion_mnist", root=str(tmp_path))


def test_read_idx_rejects_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(5))
    with pytest.raises(UserError, match="truncated"):
        read_idx(path)


def test_digits_and_synthetic() -> None:
    d = build_dataset("digits")
    assert len(d.train) + len(d.test) == 1797 and d.native_size == (8, 8)
    assert abs(len(d.test) - 0.2 * 1797) < 10
    s1 = build_dataset("synthetic", num_classes=3, image_size=12, train_size=30, test_size=9, in_chans=1)
    s2 = build_dataset("synthetic", num_classes=3, image_size=12, train_size=30, test_size=9, in_chans=1)
    assert np.array_equal(s1.train.images, s2.train.images) and s1.train.images.shape == (30, 12, 12)
    with pytest.raises(TypeError):
        build_dataset("synthetic", image_szie=12)


def _write_folder(root: Path, *, mode: str = "RGB", n: int = 3) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                shape = (10, 12, 3) if mode == "RGB" else (10, 12)
                Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / split / cls / f"{i}.png")


def test_image_folder_layout_and_channels(tmp_path: Path) -> None:
    _write_folder(tmp_path, mode="L")
    b = load_bundle(str(tmp_path))  # a path is an image folder
    assert b.class_names == ["cat", "dog"] and b.in_chans == 1 and (len(b.train), len(b.test)) == (6, 6)
    pre = data_config_for("mobilenetv2_035", b, input_size=16)
    x, y = eval_dataset(b, pre)[0]
    assert x.shape == (1, 16, 16) and y == 0
    rgb = load_bundle("folder", root=str(tmp_path), options={"in_chans": 3})
    x, _ = eval_dataset(rgb, data_config_for("mobilenetv2_035", rgb, input_size=16))[0]
    assert x.shape == (3, 16, 16)


def test_unreadable_image_is_named_or_skipped_at_scan(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    bad = tmp_path / "train" / "dog" / "broken.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(BadImageError, match="broken.png"):
        load_bundle(str(tmp_path))
    b = load_bundle(str(tmp_path), skip_bad=True)
    assert [Path(s.path).name for s in b.extra["skipped"]] == ["broken.png"] and len(b.train) == 6


@pytest.mark.parametrize("workers", [0, 1])
def test_truncated_image_fails_in_main_process_naming_the_file(tmp_path: Path, workers: int) -> None:
    _write_folder(tmp_path)
    target = tmp_path / "train" / "cat" / "1.png"
    Image.fromarray(np.full((64, 64, 3), 7, dtype=np.uint8)).save(target)
    target.write_bytes(target.read_bytes()[:-30])  # header intact, pixel data cut: fails only when decoded
    b = load_bundle(str(tmp_path))
    ds = train_dataset(b, data_config_for("mobilenetv2_035", b, input_size=8), AugmentConfig(), seed=0)
    loader = make_loader(ds, batch_size=4, workers=workers)
    with pytest.raises(BadImageError, match=r"1\.png.*--skip-bad"):
        list(iterate(loader, skip_bad=False))
    seen: list[str] = []
    batches = list(iterate(loader, skip_bad=True, on_bad=lambda bad: seen.extend(x.path for x in bad)))
    assert sum(len(y) for _, y in batches) == 5 and [Path(p).name for p in seen] == ["1.png"]


def test_augmentation_depends_on_seed_epoch_index_only() -> None:
    b = build_dataset("synthetic", image_size=16, train_size=8, test_size=4)
    pre = data_config_for("mobilenetv2_035", b, input_size=16)
    aug = AugmentConfig(rand_augment="rand-m9-mstd0.5", re_prob=0.5, hflip=0.5)
    ds = train_dataset(b, pre, aug, seed=3)
    first = ds[(1, 5)][0]
    torch.manual_seed(123)  # global RNG state must not matter
    np.random.seed(7)
    assert torch.equal(first, ds[(1, 5)][0])
    assert not torch.equal(first, ds[(2, 5)][0])
    assert not torch.equal(first, train_dataset(b, pre, aug, seed=4)[(1, 5)][0])


def test_resumable_sampler_continues_the_same_order_and_shards() -> None:
    data = list(range(23))
    full = ResumableSampler(data, shuffle=True, seed=1)
    full.set_position(epoch=2)
    order = list(full)
    part = ResumableSampler(data, shuffle=True, seed=1)
    part.set_position(epoch=2, start=10)
    assert list(part) == order[10:] and len(part) == 13
    assert all(e == 2 for e, _ in order)
    shards = [list(ResumableSampler(data, num_replicas=2, rank=r, shuffle=True, seed=1)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 12
    assert {i for s in shards for _, i in s} == set(data)
    assert sorted(i for r in range(3) for i in ShardSampler(10, num_replicas=3, rank=r)) == list(range(10))


def test_eval_transform_uses_crop_pct() -> None:
    b = build_dataset("synthetic", image_size=40, train_size=4, test_size=4)
    pre = data_config_for("mobilenetv2_035", b, input_size=32, crop_pct=0.5)
    x, _ = eval_dataset(b, pre)[0]
    assert x.shape == (3, 32, 32)
    # resize 40 -> 64 then center 32: the crop covers the middle half of the image
    full = data_config_for("mobilenetv2_035", b, input_size=32, crop_pct=1.0)
    assert not torch.equal(x, eval_dataset(b, full)[0][0])
