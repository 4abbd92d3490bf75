"""Loaders whose batches are a pure function of (seed, epoch, position): the basis of exact resume.

* :class:`ResumableSampler` is a :class:`~torch.utils.data.DistributedSampler` (one replica when not
  distributed) that can start an epoch part-way through and yields ``(epoch, index)`` keys.
* :class:`TransformedDataset` applies a random (training) transform with the Python, NumPy and torch
  random states seeded from ``(seed, epoch, index)``, so an augmented sample does not depend on which
  worker made it, how far workers prefetched, or whether the run was interrupted. (The trainer re-seeds
  the main process from its own counters before it draws random numbers: :func:`seed_all`.)
* :func:`collate` stacks good samples and passes unreadable ones (:class:`BadSample`) through by name,
  so the main process decides to raise or to skip and count them.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torch.utils.data._utils.collate import default_collate

from litevision.data._image import BadImageError, BadSample, bad_image_message


def mix_seed(*key: int) -> int:
    """A 32-bit seed from integers (splitmix64 over the key): cheap, well spread, platform-independent."""
    h = 0x9E3779B97F4A7C15
    for k in key:
        h = (h ^ (k & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0xFFFFFFFF


def seed_all(*key: int) -> None:
    """Seed Python ``random``, NumPy's global state and torch (CPU and CUDA) from ``key``.

    Seeding per sample / per batch from counters, instead of saving and restoring RNG states, is what
    makes randomness independent of workers, prefetching and interruptions (and it is ~50x cheaper than
    NumPy's get_state/set_state round trip)."""
    seed = mix_seed(*key)
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)  # torch.manual_seed also probes every backend: ~1 ms
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


class TransformedDataset(Dataset):
    """``dataset[index]`` -> ``(transform(sample), label)``.

    Keys are plain indices or ``(epoch, index)`` pairs (from :class:`ResumableSampler`). With ``seed`` set
    (training), the global RNGs are seeded from ``(seed, epoch, index)`` before the transform; ``None``
    (evaluation: deterministic transforms) leaves them alone. ``transform=None`` passes samples through.
    ``joint=True``: the transform takes and returns ``(sample, target)`` (detection: boxes follow the image).
    """

    def __init__(self, dataset: Dataset, transform: Callable[..., Any] | None, *, seed: int | None = None,
                 joint: bool = False) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.joint = joint

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int] | BadSample:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        sample, label = self.dataset[index]
        if isinstance(sample, BadSample):
            return sample
        if self.transform is None:
            return sample, label
        try:
            if self.seed is not None:
                seed_all(self.seed, epoch, index)
            return self.transform(sample, label) if self.joint else (self.transform(sample), label)
        except Exception as e:  # e.g. an image PIL decoded but cannot transform: name the file, not the worker
            return BadSample(sample_name(self.dataset, index), f"{type(e).__name__}: {e}")


def sample_name(dataset: Dataset, index: int) -> str:
    """The file behind ``dataset[index]`` when known (image folders, subsets of them), else ``sample #i``."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset, index = dataset.dataset, dataset.indices[index]
    samples = getattr(dataset, "samples", None)
    return str(samples[index][0]) if samples is not None else f"sample #{index}"


class ResumableSampler(DistributedSampler):
    """DistributedSampler (shuffle seeded by ``seed + epoch``, padded to equal shards) that yields
    ``(epoch, index)`` keys and can skip the first ``start`` keys of this rank's shard (resume)."""

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in itertools.islice(super().__iter__(), self.start, None):
            yield self.epoch, index

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(torch.utils.data.Sampler):
    """Every ``num_replicas``-th index from ``rank``, in order, no padding (exact distributed evaluation)."""

    def __init__(self, length: int, *, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = range(rank, length, num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


Collate = Callable[[list[tuple[Any, Any]]], tuple[Any, Any]]


def collate(batch: list[tuple[Any, Any] | BadSample], samples: Collate = default_collate
            ) -> tuple[Any, Any, list[BadSample]]:
    """``(inputs, targets, bad_samples)``; inputs/targets are ``None`` when every sample was unreadable.

    ``samples`` batches the good ``(input, target)`` pairs (default: stack both; a task with variable-length
    targets, such as detection, passes its own)."""
    good = [b for b in batch if not isinstance(b, BadSample)]
    bad = [b for b in batch if isinstance(b, BadSample)]
    if not good:
        return None, None, bad
    x, y = samples(good)
    return x, y, bad


def iterate(loader: DataLoader, *, skip_bad: bool, on_bad: Callable[[list[BadSample]], None] | None = None
            ) -> Iterator[tuple[Any, Any]]:
    """Yield ``(inputs, labels)`` from a loader built with :func:`collate` (or any (x, y) loader).

    Unreadable images raise :class:`BadImageError` naming the file, or with ``skip_bad`` are reported to
    ``on_bad`` and left out (a batch with no readable image is skipped)."""
    for batch in loader:
        if len(batch) == 3:
            x, y, bad = batch
            if bad:
                if not skip_bad:
                    raise BadImageError(bad_image_message(bad))
                if on_bad is not None:
                    on_bad(bad)
            if x is None:
                continue
        else:
            x, y = batch
        yield x, y


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    sampler: torch.utils.data.Sampler | None = None,
    workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    seed: int = 0,
    collate_samples: Collate = default_collate,
) -> DataLoader:
    """A DataLoader with :func:`collate` (good samples batched by ``collate_samples``) and a private generator
    (it never draws from the global torch RNG)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        collate_fn=functools.partial(collate, samples=collate_samples),
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=False,
        generator=generator,
    )
