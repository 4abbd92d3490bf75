"""Model cards: what the paper claims and what a user needs to feed the model (typed, machine-readable).

:class:`DataConfig` is the one description of a model's input preprocessing in litevision: the model card
carries the default one (as torchvision attaches transforms to its weights and timm a ``pretrained_cfg``),
training resolves it against the dataset and the recipe, every weights file stores the resolved one, and
evaluation, export and benchmarking read it back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# where a DataConfig's mean/std came from
NORM_SOURCES = ("model", "dataset", "estimated", "config", "checkpoint", "none")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """A model's input: size, resize/crop policy and normalization, and where the statistics came from.

    ``input_size`` is (C, H, W) for images, (C, D, H, W) for volumetric inputs (hyperspectral patches).
    Evaluation resizes to ``size / crop_pct`` and center-crops to ``size``; ``norm_source`` is one of
    ``model`` (the card's), ``dataset`` (the dataset's published statistics), ``estimated`` (measured on a
    sample of the training split), ``config`` (set in the recipe), ``checkpoint`` (read from trained weights)
    or ``none`` (ready tensors, no normalization).
    """

    input_size: tuple[int, ...] = (3, 224, 224)
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    norm_source: str = "model"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def in_chans(self) -> int:
        return self.input_size[0]

    def replace(self, **changes: Any) -> DataConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], **changes: Any) -> DataConfig:
        """From :meth:`to_dict` output (or a weights file's metadata); unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in names}, **changes})


@dataclass(frozen=True, kw_only=True)
class Paper:
    """The publication a model family (or variant) comes from."""

    title: str
    url: str = ""
    venue: str = ""


@dataclass(frozen=True, kw_only=True)
class PaperFigures:
    """What the paper reports for one variant at the card's input size.

    ``complexity_tol`` is the relative difference from our measured params / MACs that the metadata test
    accepts (``None``: the paper's numbers cannot be matched, the card's notes say why); ``params_fused``
    says the paper counts parameters after deploy fusion (BatchNorm folded).
    """

    params_m: float | None = None
    macs_g: float | None = None
    top1: float | None = None
    complexity_tol: float | None = 0.03
    params_fused: bool = False


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """Metadata attached to every registered model (``model.card``; ``model.pretrained_cfg`` as a flat dict).

    ``export_dynamic_hw`` False: the model's ONNX graph holds size-dependent constants (the reason is in
    ``notes``), so ONNX exports are made for one input size; the batch stays dynamic. ``runtime_limits``: deploy
    runtimes that cannot run the model's ONNX graph (``{"opencv": "why, with the runtime's error"}``); the
    export skips verifying there and says why.
    """

    family: str
    paper: Paper
    task: str = "classification"
    figures: PaperFigures = PaperFigures()
    data_config: DataConfig = DataConfig()
    reference: tuple[str, ...] = ()
    export_dynamic_hw: bool = True
    runtime_limits: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, ...]:
        return self.data_config.input_size

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-friendly dict in timm's ``pretrained_cfg`` style (paper figures prefixed ``paper_``)."""
        f = self.figures
        return {
            "family": self.family, "task": self.task, "paper": self.paper.title, "paper_url": self.paper.url,
            "venue": self.paper.venue,
            "paper_params_m": f.params_m, "paper_macs_g": f.macs_g, "paper_top1": f.top1,
            "complexity_tol": f.complexity_tol, "params_fused": f.params_fused,
            **{k: v for k, v in self.data_config.to_dict().items() if k != "norm_source"},
            "reference": list(self.reference), "export_dynamic_hw": self.export_dynamic_hw,
            "runtime_limits": dict(self.runtime_limits), "notes": self.notes,
            "extra": dict(self.extra),
        }
