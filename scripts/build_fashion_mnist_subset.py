"""Build the bundled Fashion-MNIST subset (``src/litevision/data/bundled/fashion_mnist_subset.npz``).

A stratified sample of the original files from the Debian package ``dataset-fashion-mnist`` (MIT):
``--train`` images from the training set and ``--test`` from the test set, the same number per class,
chosen with a fixed seed, kept in their original order, stored as uint8.

    python scripts/build_fashion_mnist_subset.py            # 5,000 train / 1,000 test
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from litevision.data.fashion_mnist import BUNDLED, DEBIAN_DIR, load_arrays


def stratified_sample(labels: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    classes = np.unique(labels)
    per_class = total // len(classes)
    picked = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(picked))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(DEBIAN_DIR), help="folder with the four *-ubyte.gz files")
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(BUNDLED))
    args = parser.parse_args()

    arrays = load_arrays(args.root)
    rng = np.random.default_rng(args.seed)
    train_idx = stratified_sample(arrays["y_train"], args.train, rng)
    test_idx = stratified_sample(arrays["y_test"], args.test, rng)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        x_train=arrays["x_train"][train_idx],
        y_train=arrays["y_train"][train_idx],
        x_test=arrays["x_test"][test_idx],
        y_test=arrays["y_test"][test_idx],
        train_index=train_idx.astype(np.int32),  # positions in the original files, for provenance
        test_index=test_idx.astype(np.int32),
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(train_idx)} train / {len(test_idx)} test")


if __name__ == "__main__":
    main()
