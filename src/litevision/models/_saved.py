"""Trained weights as data: a ``.safetensors`` file whose metadata names the model, its constructor arguments,
its classes and its input :class:`~litevision.models.DataConfig` (and, for a pruned network, its per-layer
widths under ``"structure"``), so it rebuilds without the recipe.

``litevision train`` writes such files (``best.safetensors`` / ``last.safetensors`` in a run folder);
:func:`load_trained_model` reads one (or a run folder) back. Nothing here unpickles: safetensors holds tensors
and JSON strings only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from litevision.errors import UserError
from litevision.models._card import DataConfig
from litevision.models._peers import create_any_model
from litevision.models._weights import load_checkpoint, safetensors_errors
from litevision.utils.io import atomic_write

WEIGHTS_FORMAT = "litevision-weights-1"
RUN_WEIGHTS = ("best.safetensors", "last.safetensors")  # what a run folder resolves to, in this order


def save_weights(path: str | os.PathLike[str], state_dict: Mapping[str, Tensor], metadata: Mapping[str, Any]) -> Path:
    """Write a state dict as safetensors, atomically; ``metadata`` values are stored as JSON strings."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for k, v in state_dict.items():
        t = v.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if key in seen:  # safetensors refuses tensors sharing memory (tied weights): store a copy
            t = t.clone()
        seen.add(key)
        tensors[k] = t
    meta = {k: json.dumps(v) for k, v in metadata.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON-decoded metadata of a safetensors file (no tensors are read)."""
    from safetensors import safe_open

    with safetensors_errors(path), safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    meta = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v
    return meta


def load_weights(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read (state_dict, metadata) from a safetensors file written by :func:`save_weights`."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    meta = read_metadata(path)
    with safetensors_errors(path):
        return load_file(str(path), device="cpu"), meta


def weights_metadata(model_name: str, model_kwargs: Mapping[str, Any], num_classes: int,
                     class_names: list[str], data_config: DataConfig, **extra: Any) -> dict[str, Any]:
    """What :func:`load_trained_model` needs to rebuild the model and its preprocessing (plus ``extra``)."""
    return {"format": WEIGHTS_FORMAT, "model": model_name, "model_kwargs": dict(model_kwargs),
            "num_classes": num_classes, "class_names": class_names,
            **{k: v for k, v in data_config.to_dict().items() if k != "norm_source"}, **extra}


def data_config_from_metadata(meta: Mapping[str, Any]) -> DataConfig:
    """The input configuration a weights file was trained with."""
    return DataConfig.from_dict(dict(meta), norm_source="checkpoint")


def is_litevision_weights(path: str | os.PathLike[str]) -> bool:
    """A run folder of ``litevision train`` or a ``.safetensors`` file carrying its metadata."""
    p = Path(path)
    if p.is_dir():
        return any((p / name).is_file() for name in RUN_WEIGHTS)
    if p.suffix != ".safetensors" or not p.is_file():
        return False
    return "format" in read_metadata(p)


def resolve_weights_path(path: str | os.PathLike[str]) -> Path:
    """A weights file, or a run folder (its ``best.safetensors``, else ``last.safetensors``)."""
    p = Path(path)
    if p.is_dir():
        for name in RUN_WEIGHTS:
            if (p / name).is_file():
                return p / name
        raise UserError(f"{p}: no best.safetensors or last.safetensors (is it a litevision run folder?)")
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    return p


def load_trained_model(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved by ``litevision train`` (a weights file or a run folder): (eval-mode model, metadata).

    The metadata holds ``model``, ``model_kwargs``, ``num_classes``, ``class_names``, the input configuration
    (:func:`data_config_from_metadata`), the ``task`` and the ``dataset`` it was trained on; a pruned network
    also its ``structure`` (per-layer widths, applied before the weights are loaded).
    """
    p = resolve_weights_path(path)
    if p.suffix != ".safetensors":
        raise UserError(f"{p}: not a litevision weights file; pass --model NAME to load foreign weights")
    state, meta = load_weights(p)
    if meta.get("format") != WEIGHTS_FORMAT:
        raise UserError(f"{p}: has no litevision metadata; pass --model NAME (and --num-classes) to load it")
    kwargs = dict(meta.get("model_kwargs") or {})
    if isinstance(meta.get("structure"), dict):
        kwargs.setdefault("structure", meta["structure"])
    model = create_any_model(meta["model"], num_classes=int(meta["num_classes"]),
                             in_chans=int(meta["input_size"][0]), **kwargs)
    load_checkpoint(model, state)
    return model.eval(), meta
