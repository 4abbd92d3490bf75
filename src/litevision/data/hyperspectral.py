"""Hyperspectral scenes as patch-classification datasets (HybridSN's pipeline, seed 001).

A scene is a cube (H, W, bands) with a ground-truth map (H, W) where 0 means unlabelled and 1..K are
classes. The pipeline:

1. split the labelled pixels into train / test, either **randomly** per pixel (stratified, the paper's
   protocol: 30% train) or **spatially disjoint** by blocks (a test pixel's block holds no training
   pixel). Random splits let a test pixel's patch overlap its training neighbours' patches almost
   completely, which inflates accuracy; the disjoint split measures generalization to unseen areas.
2. reduce the spectra with PCA (whitened, as the authors' code) **fitted on the training pixels only**,
   so nothing about the test pixels leaks into the preprocessing;
3. zero-pad the reduced cube by P // 2 and serve, for each pixel, its P×P neighbourhood as a float tensor
   (1, bands, P, P). Patches are cut on access from the one padded cube; they are never all materialized.

Registered datasets: ``indian_pines`` (read offline from ``tensorly.datasets``, CC BY 3.0) and
``hyperspectral`` (any cube given as ``.npy`` / ``.mat`` plus a ground-truth map).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from litevision.data.registry import DataBundle, register_dataset
from litevision.errors import UserError

INDIAN_PINES_CLASSES = (
    "Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees", "Grass-pasture-mowed",
    "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill", "Soybean-clean", "Wheat", "Woods",
    "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers",
)
SPLITS = ("random", "disjoint")


@dataclass(frozen=True)
class Scene:
    """A hyperspectral cube (H, W, bands) and its ground truth (H, W): 0 = unlabelled, 1..K = classes."""

    cube: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    name: str = "scene"
    licence: str = ""

    def __post_init__(self) -> None:
        if self.cube.ndim != 3:
            raise UserError(f"{self.name}: the cube must be (H, W, bands), got shape {self.cube.shape}")
        if self.labels.shape != self.cube.shape[:2]:
            raise UserError(f"{self.name}: ground truth {self.labels.shape} does not match the cube's "
                            f"H x W {self.cube.shape[:2]}")
        if self.labels.min() < 0 or self.labels.max() < 1:
            raise UserError(f"{self.name}: ground truth needs class ids 1..K (0 = unlabelled), "
                            f"got range {self.labels.min()}..{self.labels.max()}")
        if len(self.class_names) != self.num_classes:
            raise UserError(f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def num_classes(self) -> int:
        return int(self.labels.max())


def load_indian_pines() -> Scene:
    """Indian Pines (AVIRIS, 145×145 pixels, 200 bands after water-absorption removal, 16 classes).

    Read from the copy shipped inside ``tensorly`` (no download); labels are ``ticks[0]``.
    """
    try:
        from tensorly.datasets import load_indian_pines as _load
    except ImportError as e:
        raise UserError("Indian Pines is read from tensorly: pip install tensorly") from e
    bunch = _load()
    labels = np.asarray(bunch["ticks"][0]).astype(np.int64)
    return Scene(np.asarray(bunch["tensor"], dtype=np.float32), labels, INDIAN_PINES_CLASSES, "indian_pines",
                 str(bunch.get("LICENCE", "CC BY 3.0")))


def _read_array(path: Path, key: str | None, ndim: int) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix != ".mat":
        raise UserError(f"{path}: expected a .npy or .mat file")
    from scipy.io import loadmat

    try:
        content = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    except NotImplementedError:
        raise UserError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; save it as .npy") from None
    if key is not None:
        if key not in content:
            raise UserError(f"{path}: no variable {key!r} (has {sorted(content)})")
        return np.asarray(content[key])
    found = [k for k, v in content.items() if isinstance(v, np.ndarray) and v.ndim == ndim]
    if len(found) != 1:
        raise UserError(f"{path}: cannot tell which variable holds the {ndim}-D array ({sorted(content)}); "
                        "pass its name")
    return np.asarray(content[found[0]])


def load_scene(
    cube: str | os.PathLike[str],
    ground_truth: str | os.PathLike[str],
    *,
    cube_key: str | None = None,
    gt_key: str | None = None,
    class_names: tuple[str, ...] | list[str] | None = None,
) -> Scene:
    """A cube (H, W, bands) and ground truth (H, W) from ``.npy`` or ``.mat`` files (variable auto-detected)."""
    data = _read_array(Path(cube), cube_key, 3).astype(np.float32)
    gt = _read_array(Path(ground_truth), gt_key, 2)
    if not np.issubdtype(gt.dtype, np.integer) and not np.all(gt == np.round(gt)):
        raise UserError(f"{ground_truth}: ground truth must hold integer class ids")
    gt = gt.astype(np.int64)
    names = tuple(class_names) if class_names else tuple(f"class_{i}" for i in range(1, int(gt.max()) + 1))
    return Scene(data, gt, names, Path(cube).stem)


# ---------------------------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class Split:
    """Flat pixel indices (row * W + col) of the training and test pixels, and how they were chosen."""

    train: np.ndarray
    test: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def random_split(labels: np.ndarray, train_ratio: float, seed: int) -> Split:
    """Stratified random split of the labelled pixels: ``train_ratio`` of every class to training.

    Every class with at least two pixels keeps at least one pixel on each side.
    """
    _check_ratio(train_ratio)
    rng = np.random.default_rng(seed)
    flat = labels.ravel()
    train, test = [], []
    for k in range(1, int(flat.max()) + 1):
        idx = rng.permutation(np.flatnonzero(flat == k))
        n = int(round(train_ratio * len(idx)))
        n = min(max(n, 1), len(idx) - 1) if len(idx) >= 2 else len(idx)
        train.append(idx[:n])
        test.append(idx[n:])
    return Split(np.sort(np.concatenate(train)), np.sort(np.concatenate(test)),
                 {"split": "random", "train_ratio": train_ratio, "seed": seed})


def disjoint_split(labels: np.ndarray, train_ratio: float, seed: int, block_size: int = 10) -> Split:
    """Spatially disjoint split: the image is tiled into ``block_size`` squares and whole blocks go to
    training or test, so no test pixel shares a block with a training pixel.

    Blocks are drawn in a seeded random order, rarest class first: each class receives blocks until it
    holds ``train_ratio`` of its pixels, always leaving at least one of its blocks for test. Classes
    living in a single block cannot be on both sides (they are then test-only or train-only: see
    ``info["test_per_class"]``). With P×P patches and blocks smaller than P, test patches still contain
    training pixels at block borders; ``info["test_near_train"]`` reports that fraction.
    """
    _check_ratio(train_ratio)
    if block_size < 1:
        raise UserError(f"block_size must be >= 1, got {block_size}")
    h, w = labels.shape
    blocks_per_row = -(-w // block_size)
    block_of = (np.arange(h)[:, None] // block_size) * blocks_per_row + np.arange(w)[None, :] // block_size
    num_blocks, num_classes = int(block_of.max()) + 1, int(labels.max())
    hist = np.zeros((num_blocks, num_classes + 1), dtype=np.int64)
    np.add.at(hist, (block_of.ravel(), labels.ravel()), 1)
    hist = hist[:, 1:]
    totals = hist.sum(0)
    order = np.random.default_rng(seed).permutation(num_blocks)
    is_train = np.zeros(num_blocks, dtype=bool)
    for k in np.argsort(totals, kind="stable"):
        candidates = [b for b in order if hist[b, k] > 0]
        for b in candidates[:-1] if len(candidates) > 1 else candidates:
            if hist[is_train, k].sum() >= train_ratio * totals[k]:
                break
            is_train[b] = True
    labelled = labels.ravel() > 0
    in_train_block = is_train[block_of].ravel()
    train = np.flatnonzero(labelled & in_train_block)
    test = np.flatnonzero(labelled & ~in_train_block)
    return Split(train, test, {"split": "disjoint", "train_ratio": train_ratio, "seed": seed,
                               "block_size": block_size, "train_blocks": int(is_train.sum()),
                               "blocks": num_blocks})


def _check_ratio(train_ratio: float) -> None:
    if not 0.0 < train_ratio < 1.0:
        raise UserError(f"train_ratio must be in (0, 1), got {train_ratio}")


def near_fraction(shape: tuple[int, int], train: np.ndarray, test: np.ndarray, radius: int) -> float:
    """Fraction of test pixels with a training pixel within ``radius`` (Chebyshev), i.e. inside their patch."""
    if len(test) == 0:
        return 0.0
    from scipy.ndimage import distance_transform_cdt

    not_train = np.ones(shape, dtype=bool)
    not_train.ravel()[train] = False
    dist = distance_transform_cdt(not_train, metric="chessboard")
    return float((dist.ravel()[test] <= radius).mean())


# ------------------------------------------------------------------------------------------------- PCA


@dataclass(frozen=True)
class PCA:
    """Principal components of spectra: ``transform(x) = (x - mean) @ components.T / scale``.

    ``scale`` is the components' standard deviation when whitened (unit variance on the fitting pixels),
    else 1. Components are signed so that their largest-magnitude entry is positive (deterministic).
    """

    mean: np.ndarray
    components: np.ndarray
    scale: np.ndarray
    explained_variance_ratio: np.ndarray

    @classmethod
    def fit(cls, pixels: np.ndarray, n_components: int, whiten: bool = True) -> PCA:
        """Fit on ``pixels`` (N, bands); the training pixels only, so test spectra never shape the basis."""
        if pixels.ndim != 2:
            raise ValueError(f"expected (N, bands) pixels, got {pixels.shape}")
        n, bands = pixels.shape
        if not 1 <= n_components <= min(n, bands):
            raise UserError(f"n_components must be in 1..{min(n, bands)} (pixels x bands = {n} x {bands}), "
                            f"got {n_components}")
        x = pixels.astype(np.float64)
        mean = x.mean(0)
        cov = np.cov(x - mean, rowvar=False, ddof=1).reshape(bands, bands)
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1]
        eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
        comps = eigvec[:, :n_components].T
        signs = np.sign(comps[np.arange(n_components), np.abs(comps).argmax(1)])
        comps = comps * signs[:, None]
        var = eigval[:n_components]
        scale = np.sqrt(np.maximum(var, 1e-12)) if whiten else np.ones(n_components)
        ratio = var / max(eigval.sum(), 1e-12)
        return cls(mean, comps, scale, ratio)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Project (..., bands) spectra to (..., n_components), float32."""
        return (((x.astype(np.float64) - self.mean) @ self.components.T) / self.scale).astype(np.float32)


# ----------------------------------------------------------------------------------------------- patches


def pad_cube(cube: np.ndarray, margin: int) -> Tensor:
    """(H, W, bands) -> zero-padded (bands, H + 2m, W + 2m) float32 tensor."""
    chw = torch.from_numpy(np.ascontiguousarray(cube.transpose(2, 0, 1), dtype=np.float32))
    return torch.nn.functional.pad(chw, (margin, margin, margin, margin))


class PatchDataset(Dataset):
    """The P×P neighbourhoods of chosen pixels in a zero-padded cube, as (1, bands, P, P) float tensors.

    ``padded`` is (bands, H + P - 1, W + P - 1) (see :func:`pad_cube`); ``positions`` (N, 2) hold the
    (row, col) of each pixel in the unpadded scene, ``labels`` its class index (0-based; -1 = unknown).
    Patches are sliced from ``padded`` on access (a copy, so callers may modify them).
    """

    def __init__(self, padded: Tensor, positions: np.ndarray, labels: np.ndarray, patch_size: int) -> None:
        if patch_size % 2 != 1:
            raise UserError(f"patch_size must be odd (a pixel at the centre), got {patch_size}")
        if len(positions) != len(labels):
            raise ValueError(f"{len(positions)} positions but {len(labels)} labels")
        self.padded = padded
        self.positions = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.patch_size = patch_size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        r, c = self.positions[index]
        p = self.patch_size
        # padded row r holds scene row r - P//2, so the window starting at r is centred on scene row r
        return self.padded[:, r:r + p, c:c + p].clone().unsqueeze(0), int(self.labels[index])


def build_bundle(
    scene: Scene,
    *,
    split: str = "random",
    train_ratio: float = 0.3,
    n_components: int = 30,
    patch_size: int = 25,
    seed: int = 0,
    block_size: int = 10,
    whiten: bool = True,
) -> DataBundle:
    """Split, reduce (PCA on training pixels) and pad ``scene``; the bundle serves (1, bands, P, P) patches.

    ``extra`` carries what the map writer and the report need: ``scene_shape``, ``ground_truth`` (H, W),
    ``train_positions`` / ``test_positions`` (N, 2), ``split`` statistics and the PCA.
    """
    if split not in SPLITS:
        raise UserError(f"split must be one of {SPLITS}, got {split!r}")
    if patch_size < 1 or patch_size % 2 != 1:
        raise UserError(f"patch_size must be a positive odd number, got {patch_size}")
    labels = scene.labels
    h, w = labels.shape
    chosen = random_split(labels, train_ratio, seed) if split == "random" else \
        disjoint_split(labels, train_ratio, seed, block_size)
    pixels = scene.cube.reshape(h * w, -1)
    pca = PCA.fit(pixels[chosen.train], n_components, whiten=whiten)
    padded = pad_cube(pca.transform(scene.cube), patch_size // 2)
    flat = labels.ravel()

    def dataset(idx: np.ndarray) -> PatchDataset:
        return PatchDataset(padded, np.stack([idx // w, idx % w], 1), flat[idx] - 1, patch_size)

    k = scene.num_classes
    per_class = {
        "train_per_class": np.bincount(flat[chosen.train] - 1, minlength=k).tolist(),
        "test_per_class": np.bincount(flat[chosen.test] - 1, minlength=k).tolist(),
        "test_near_train": near_fraction((h, w), chosen.train, chosen.test, patch_size // 2),
    }
    train, test = dataset(chosen.train), dataset(chosen.test)
    return DataBundle(
        train=train,
        test=test,
        num_classes=k,
        in_chans=1,
        class_names=list(scene.class_names),
        kind="tensor",
        task="hyperspectral",
        native_size=(patch_size, patch_size),
        description=f"{scene.name}: {split} split, {len(train)} train / {len(test)} test pixels, "
                    f"PCA {n_components} (train pixels), {patch_size}x{patch_size} patches",
        extra={
            "scene": scene.name,
            "licence": scene.licence,
            "scene_shape": (h, w),
            "ground_truth": labels,
            "train_positions": train.positions,
            "test_positions": test.positions,
            "padded_cube": padded,
            "patch_size": patch_size,
            "n_components": n_components,
            "input_size": (1, n_components, patch_size, patch_size),
            "split": {**chosen.info, "train": len(train), "test": len(test), **per_class},
            "pca_explained_variance": float(pca.explained_variance_ratio.sum()),
            "mean": (0.0,),
            "std": (1.0,),
        },
    )


@register_dataset("indian_pines", "Indian Pines hyperspectral scene (145x145x200, 16 classes) as PCA patches")
def indian_pines(
    split: str = "random",
    train_ratio: float = 0.3,
    n_components: int = 30,
    patch_size: int = 25,
    seed: int = 0,
    block_size: int = 10,
) -> DataBundle:
    """HybridSN's protocol by default: 30% random stratified training pixels, 30 PCA bands, 25×25 patches."""
    return build_bundle(load_indian_pines(), split=split, train_ratio=train_ratio, n_components=n_components,
                        patch_size=patch_size, seed=seed, block_size=block_size)


@register_dataset("hyperspectral", "any hyperspectral cube (.npy/.mat, H x W x bands) with a ground-truth map")
def hyperspectral(
    cube: str | None = None,
    ground_truth: str | None = None,
    cube_key: str | None = None,
    gt_key: str | None = None,
    class_names: list[str] | None = None,
    split: str = "random",
    train_ratio: float = 0.3,
    n_components: int = 15,
    patch_size: int = 25,
    seed: int = 0,
    block_size: int = 10,
) -> DataBundle:
    """``cube`` and ``ground_truth`` are file paths (0 = unlabelled in the ground truth); 15 PCA bands by
    default (the paper's choice for Pavia University and Salinas)."""
    if cube is None or ground_truth is None:
        raise UserError("the hyperspectral dataset needs cube=<file.npy|.mat> and ground_truth=<file.npy|.mat>")
    scene = load_scene(cube, ground_truth, cube_key=cube_key, gt_key=gt_key, class_names=class_names)
    return build_bundle(scene, split=split, train_ratio=train_ratio, n_components=n_components,
                        patch_size=patch_size, seed=seed, block_size=block_size)
