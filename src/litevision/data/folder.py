"""A folder of images in ImageFolder layout: the users' own data.

``root`` holds ``train/`` and ``test/`` (and optionally ``val/``) sub-folders, each with one folder per
class (``root/train/<class_name>/*.png``). Class names and their order come from ``train/``. Without a
``test/`` folder, ``test_fraction`` of ``train/`` (stratified, seeded) becomes the test split; a root
with class folders directly inside (no ``train/``) is split the same way.
``in_chans`` is the number of channels the model reads: 1 converts the images to grey, 3 to RGB; by
default it is 1 when every image of the first few checked is grey, else 3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Subset

from litevision.data._image import ImageFolderDataset, stratified_indices
from litevision.data.registry import DataBundle, register_dataset
from litevision.errors import UserError


def _guess_in_chans(ds: ImageFolderDataset, probe: int = 32) -> int:
    step = max(1, len(ds.samples) // probe)
    for path, _ in ds.samples[::step]:
        with Image.open(path) as img:
            if img.mode not in ("L", "1", "I;16", "I"):
                return 3
    return 1


@register_dataset("folder", "your images: root/{train,val,test}/<class_name>/<image> (ImageFolder layout)")
def folder(
    root: str,
    in_chans: int | None = None,
    skip_bad: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DataBundle:
    base = Path(root)
    if not base.is_dir():
        raise UserError(f"data folder not found: {base}")
    train_dir = base / "train" if (base / "train").is_dir() else base
    if train_dir == base and ((base / "test").is_dir() or (base / "val").is_dir()):
        raise UserError(f"{base}: has test/ or val/ but no train/ sub-folder (layout root/train/<class_name>/...)")
    train = ImageFolderDataset(train_dir, skip_bad=skip_bad)
    names = train.class_names
    splits = {s: ImageFolderDataset(base / s, class_names=names, skip_bad=skip_bad)
              for s in ("val", "test") if train_dir != base and (base / s).is_dir()}
    if "test" in splits:
        train_set, test_set = train, splits["test"]
    else:
        kept, held = stratified_indices(np.asarray(train.targets), test_fraction, seed)
        train_set, test_set = Subset(train, kept.tolist()), Subset(train, held.tolist())
    skipped = train.skipped + [b for ds in splits.values() for b in ds.skipped]
    return DataBundle(
        train=train_set,
        test=test_set,
        val=splits.get("val"),
        num_classes=len(names),
        in_chans=in_chans or _guess_in_chans(train),
        class_names=names,
        description=f"image folder {base}",
        extra={"skipped": skipped, "root": str(base)},
    )
