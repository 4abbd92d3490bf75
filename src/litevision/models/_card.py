"""Model cards: what the paper claims and what a user needs to feed the model (typed, machine-readable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCard:
    """Metadata attached to every registered model (``model.card``; ``model.pretrained_cfg`` as a dict).

    ``paper_params_m`` / ``paper_macs_g`` are the paper's figures at ``input_size``; ``complexity_tol`` is the
    relative difference the metadata test accepts (``None`` = the paper's numbers cannot be matched; the
    reason is in ``notes``). ``params_fused`` says the paper counts parameters after deploy fusion.
    ``export_dynamic_hw`` False: the model's ONNX graph holds size-dependent constants (the reason is in
    ``notes``), so ONNX exports are made for one input size; the batch stays dynamic.
    """

    family: str
    paper: str
    paper_url: str = ""
    venue: str = ""
    paper_params_m: float | None = None
    paper_macs_g: float | None = None
    paper_top1: float | None = None
    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    reference: tuple[str, ...] = ()
    complexity_tol: float | None = 0.03
    params_fused: bool = False
    export_dynamic_hw: bool = True
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
