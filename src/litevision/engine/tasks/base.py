"""The task interface: what the one trainer needs to know about a kind of problem.

The trainer owns everything that is the same for every task — the loop, optimizer and schedule, AMP, DDP,
EMA, distillation's teacher, exact resume, checkpoints, logs. A :class:`Task` says what differs:

* **data** — the input :class:`~litevision.models.DataConfig` (resolved against the dataset and the recipe),
  the train / eval datasets with their transforms, and how samples become a batch (:meth:`Task.collate`):
  a stacked label tensor for classification, a list of variable-length target dicts for detection;
* **training** — an optional batch transform (mixup / cutmix), the forward pass in training mode (a detector
  takes the targets too) and the loss;
* **evaluation** — an :class:`Evaluator` that accumulates outputs batch by batch (sharded across ranks and
  merged on rank 0) and computes a :class:`Report` over the whole set at once (a COCO-style mAP needs every
  image), with the task's ``primary_metric`` choosing ``best.safetensors``;
* **report** — the report's JSON, CSV and plots, and :meth:`Task.visualize` for pictures that need the model
  (a hyperspectral class map, predictions drawn on images).

A new task subclasses :class:`Task` (and usually :class:`Evaluator`), registers with :func:`register_task`
and is chosen by ``task.name`` in a recipe, or by the dataset's ``DataBundle.task`` when that is ``auto``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from litevision.data import AugmentConfig, DataBundle, data_config_for, eval_dataset, train_dataset
from litevision.models import DataConfig
from litevision.registry import Registry


class Report(Protocol):
    """An evaluation result: scalar metrics, a text summary, a JSON form and files (tables, plots)."""

    meta: dict[str, Any]

    def metrics(self) -> dict[str, float | None]:
        """Scalar metrics by name; the task's ``primary_metric`` is among them."""

    def summary(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...

    def save(self, out_dir: str | os.PathLike[str], *, plots: bool = True) -> dict[str, Path]: ...


class Evaluator(ABC):
    """Accumulates a model's outputs over an evaluation set; :meth:`compute` sees the whole set at once."""

    @abstractmethod
    def update(self, outputs: Any, targets: Any) -> None:
        """Add one batch (eval-mode outputs, targets as collated)."""

    @abstractmethod
    def state(self) -> Any:
        """What this rank accumulated, picklable (gathered to rank 0 in distributed evaluation)."""

    @abstractmethod
    def merge(self, states: Sequence[Any]) -> None:
        """Replace the accumulated state by the concatenation of every rank's :meth:`state`."""

    @abstractmethod
    def compute(self, *, meta: Mapping[str, Any] | None = None, skipped: Sequence[str] = ()) -> Report:
        """The report over everything accumulated; ``skipped`` lists unreadable samples left out."""


class Task(ABC):
    """One kind of problem for the trainer; see the module docstring. Built per run with its dataset."""

    name: ClassVar[str]
    primary_metric: ClassVar[str]  # higher is better; selects best.safetensors
    logged_metrics: ClassVar[tuple[str, ...]]  # the validation metrics that get a column in log.csv

    def __init__(self, bundle: DataBundle, data_config: DataConfig, *,
                 class_names: Sequence[str] | None = None) -> None:
        """``class_names``: the names a trained model was saved with (default: the dataset's)."""
        self.bundle = bundle
        self.data_config = data_config
        self._class_names = list(class_names) if class_names is not None else list(bundle.class_names)

    # --- data --------------------------------------------------------------------------------------------

    @classmethod
    def resolve_data_config(cls, bundle: DataBundle, model_name: str, **overrides: Any) -> DataConfig:
        """The model's input configuration for this dataset; ``overrides`` are the recipe's ``data`` settings
        (``input_size``, ``in_chans``, ``crop_pct``, ``interpolation``, ``norm``, ``mean``, ``std``) and
        ``pretrained`` (see :func:`litevision.data.data_config_for`)."""
        return data_config_for(model_name, bundle, **overrides)

    @property
    def num_classes(self) -> int:
        return self.bundle.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    def model_kwargs(self) -> dict[str, Any]:
        """Constructor arguments the data implies (a hyperspectral model's bands and patch size)."""
        return {}

    def train_dataset(self, aug: AugmentConfig, *, seed: int) -> Dataset:
        return train_dataset(self.bundle, self.data_config, aug, seed=seed)

    def eval_dataset(self, split: str) -> Dataset:
        return eval_dataset(self.bundle, self.data_config, split)

    def collate(self, samples: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        """``(inputs, targets)`` of a batch from its ``(input, target)`` samples (default: stack both, as for
        class labels; a detection task keeps one variable-length target per image)."""
        return default_collate(samples)

    def targets_to(self, targets: Any, device: torch.device) -> Any:
        return targets.to(device, non_blocking=True) if isinstance(targets, Tensor) else targets

    # --- training ----------------------------------------------------------------------------------------

    def batch_transform(self, aug: AugmentConfig) -> Callable[[Tensor, Any], tuple[Tensor, Any]] | None:
        """A transform of whole training batches (mixup / cutmix), or None."""
        return None

    def forward_train(self, model: nn.Module, inputs: Tensor, targets: Any) -> Any:
        """The training-mode forward pass (a detector also takes the targets)."""
        return model(inputs)

    @abstractmethod
    def criterion(self, aug: AugmentConfig, teacher: nn.Module | None, distill: Any) -> Callable[..., Tensor]:
        """``loss(inputs, outputs, targets) -> scalar``, with ``teacher`` when distillation is on."""

    # --- evaluation and report ---------------------------------------------------------------------------

    def chance_level(self) -> float:
        """The primary metric of a model that guesses (a run ending there learned nothing)."""
        return 100.0 / max(self.num_classes, 1)

    @abstractmethod
    def evaluator(self, **options: Any) -> Evaluator:
        """A fresh evaluator for one pass over an evaluation set."""

    def visualize(self, model: nn.Module, report: Report, out_dir: Path, *,
                  device: torch.device) -> dict[str, Path]:
        """Pictures of the model's predictions (written next to the report); none by default."""
        return {}


TASKS: Registry[str] = Registry("task", "litevision.engine.tasks.list_tasks()")


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a task under its ``name``; duplicates raise."""
    TASKS.register(cls.name, cls, (cls.__doc__ or "").strip().splitlines()[0])
    return cls


def list_tasks() -> list[str]:
    return TASKS.names()


def task_class(name: str, bundle: DataBundle | None = None) -> type[Task]:
    """The task registered as ``name``; ``auto`` picks the one the dataset is meant for."""
    if name == "auto":
        name = bundle.task if bundle is not None else "classification"
    return TASKS.get(name).fn
