"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, MIT licence): 28x28 grey images of 10 clothing classes.

* ``fashion_mnist``: the full 60,000 / 10,000 split, read from the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist/``) or any folder holding the four original ``*-ubyte.gz`` files.
* ``fashion_mnist_subset``: a stratified 5,000 / 1,000 subset shipped inside the package
  (``bundled/fashion_mnist_subset.npz``, built by ``scripts/build_fashion_mnist_subset.py``), so the demo
  and the tests run anywhere.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from litevision.data._image import ArrayImageDataset, stratified_indices
from litevision.data.registry import DataBundle, register_dataset
from litevision.errors import UserError

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
BUNDLED = Path(__file__).parent / "bundled" / "fashion_mnist_subset.npz"
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
# Statistics of the full training images (pixel / 255); used to normalize when training from scratch.
MEAN, STD = (0.2860,), (0.3530,)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format: magic, dims, big-endian uint8 payload), gzipped or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise UserError(f"{path}: not a uint8 IDX file (magic {data[:4].hex()})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise UserError(f"{path}: truncated ({payload.size} bytes for dims {dims})")
    return payload.reshape(dims)


def load_arrays(root: str | os.PathLike[str] = DEBIAN_DIR) -> dict[str, np.ndarray]:
    root = Path(root)
    missing = [name for name in FILES.values() if not (root / name).is_file()]
    if missing:
        raise UserError(
            f"Fashion-MNIST files not found in {root} (missing {', '.join(missing)}). Install the Debian package "
            "`dataset-fashion-mnist` (apt-get install dataset-fashion-mnist), pass root=<folder with the four "
            "*-ubyte.gz files>, or use the bundled subset `fashion_mnist_subset`."
        )
    return {key: read_idx(root / name) for key, name in FILES.items()}


def _bundle(arrays: dict[str, np.ndarray], description: str, val_fraction: float, seed: int) -> DataBundle:
    train = ArrayImageDataset(arrays["x_train"], arrays["y_train"])
    val = None
    if val_fraction > 0:
        kept, held = stratified_indices(train.labels, val_fraction, seed)
        train, val = train.subset(kept), train.subset(held)
    return DataBundle(
        train=train,
        test=ArrayImageDataset(arrays["x_test"], arrays["y_test"]),
        val=val,
        num_classes=10,
        in_chans=1,
        class_names=list(CLASS_NAMES),
        native_size=(28, 28),
        description=description,
        extra={"mean": MEAN, "std": STD, "licence": "MIT (Zalando SE)"},
    )


@register_dataset("fashion_mnist", "Fashion-MNIST 60k/10k 28x28 grey, 10 classes (Debian dataset-fashion-mnist)")
def fashion_mnist(root: str | None = None, val_fraction: float = 0.0, seed: int = 0) -> DataBundle:
    """``val_fraction`` > 0 holds out a stratified part of the training set as ``val``."""
    arrays = load_arrays(root or DEBIAN_DIR)
    return _bundle(arrays, "Fashion-MNIST (full)", val_fraction, seed)


@register_dataset("fashion_mnist_subset", "bundled stratified Fashion-MNIST subset: 5,000 train / 1,000 test")
def fashion_mnist_subset(val_fraction: float = 0.0, seed: int = 0) -> DataBundle:
    if not BUNDLED.is_file():
        raise UserError(f"bundled data missing: {BUNDLED} (reinstall litevision)")
    with np.load(BUNDLED) as f:
        arrays = {key: f[key] for key in FILES}
    return _bundle(arrays, "Fashion-MNIST stratified subset (bundled)", val_fraction, seed)
