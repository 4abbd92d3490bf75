"""A network's per-layer widths as data, so a pruned model rebuilds without pickle.

Structured pruning (:func:`litevision.compress.prune`) removes channels physically: convolutions, norms and
linear layers end up narrower than the registered architecture builds them. :func:`model_structure` records,
for every module that has parameters, buffers or width attributes, those attributes (``in_channels``,
``groups``, ``num_features``, the split sizes of LCNet's multi-scale convolution, the SKA weight rows of
LSNet's large-kernel perception ...) and the shapes of its own tensors. :func:`apply_structure` reshapes a
freshly built model to it - attributes set, tensors replaced by empty ones of the stored shapes - after which
``load_state_dict(strict=True)`` fills them. The record is plain JSON: it travels in the metadata of a
``.safetensors`` weights file (key ``"structure"``) or as ``create_model(name, structure=...)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

STRUCTURE_FORMAT = "litevision-structure-1"

# attributes that define a module's widths (or are derived from them and read in forward)
SHAPE_ATTRS = (
    "in_channels", "out_channels", "groups", "num_features", "in_features", "out_features", "normalized_shape",
    "num_channels", "num_groups", "in_chs", "out_chs", "splits", "weight_rows", "num_kernels", "embed_dim",
    "num_heads", "head_dim", "qk_dim", "value_dim",
)


def _attr_value(value: Any) -> Any:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, tuple | list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    return None


def model_structure(model: nn.Module) -> dict[str, Any]:
    """The JSON-able structure of ``model``: width attributes and tensor shapes of every module that has any,
    plus the model's ``num_classes`` / ``num_features`` / ``in_chans`` and its stages' channels."""
    modules: dict[str, Any] = {}
    for path, module in model.named_modules():
        attrs = {}
        for name in SHAPE_ATTRS:
            if name in module.__dict__:
                value = _attr_value(module.__dict__[name])
                if value is not None:
                    attrs[name] = value
        shapes = {name: list(t.shape) for name, t in module.named_parameters(recurse=False)}
        shapes.update({name: list(t.shape) for name, t in module.named_buffers(recurse=False)})
        if attrs or shapes:
            modules[path] = {"type": type(module).__name__, "attrs": attrs, "shapes": shapes}
    top = {k: getattr(model, k) for k in ("num_classes", "num_features", "in_chans")
           if isinstance(getattr(model, k, None), int)}
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and all(isinstance(f, dict) and "num_chs" in f for f in info):
        top["feature_channels"] = [int(f["num_chs"]) for f in info]
    return {"format": STRUCTURE_FORMAT, "model": top, "modules": modules}


@torch.no_grad()
def apply_structure(model: nn.Module, structure: Mapping[str, Any]) -> nn.Module:
    """Reshape a freshly built ``model`` (in place) to ``structure`` (from :func:`model_structure`) and return it.

    Tensors whose shape changes are replaced by uninitialised ones: load the matching weights next. Raises
    ``ValueError`` when the structure was recorded from another architecture or another class count.
    """
    if not isinstance(structure, Mapping) or structure.get("format") != STRUCTURE_FORMAT:
        raise ValueError(f"not a litevision structure (expected format {STRUCTURE_FORMAT!r})")
    name = getattr(model, "model_name", type(model).__name__)
    top = dict(structure.get("model") or {})
    own_classes = getattr(model, "num_classes", None)
    if "num_classes" in top and own_classes is not None and top["num_classes"] != own_classes:
        raise ValueError(f"the structure of {name} was recorded with {top['num_classes']} classes, the model was "
                         f"built with {own_classes}: build it with num_classes={top['num_classes']} (or "
                         "checkpoint_num_classes, to reset the classifier after loading)")
    modules = dict(model.named_modules())
    for path, entry in (structure.get("modules") or {}).items():
        module = modules.get(path)
        if module is None:
            raise ValueError(f"the structure does not fit {name}: it has no submodule {path!r}")
        if type(module).__name__ != entry.get("type"):
            raise ValueError(f"the structure does not fit {name}: {path!r} is a {type(module).__name__}, the "
                             f"structure has a {entry.get('type')}")
        for attr, value in (entry.get("attrs") or {}).items():
            if attr not in SHAPE_ATTRS:
                raise ValueError(f"structure of {path!r}: {attr!r} is not a width attribute")
            setattr(module, attr, tuple(value) if isinstance(value, list) else int(value))
        for tensor_name, shape in (entry.get("shapes") or {}).items():
            _reshape_tensor(module, path, tensor_name, tuple(int(s) for s in shape))
    if "num_features" in top and hasattr(model, "num_features"):
        model.num_features = int(top["num_features"])
    info = getattr(model, "feature_info", None)
    channels = top.get("feature_channels")
    if channels is not None and isinstance(info, list) and len(info) == len(channels):
        model.feature_info = [{**f, "num_chs": int(c)} for f, c in zip(info, channels)]
    return model


def _reshape_tensor(module: nn.Module, path: str, name: str, shape: tuple[int, ...]) -> None:
    if name in module._parameters:
        old = module._parameters[name]
        if old is not None and tuple(old.shape) == shape:
            return
        like = old if old is not None else next(iter(module.parameters()), None)
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        device = like.device if like is not None else None
        requires_grad = old.requires_grad if old is not None else True
        module._parameters[name] = nn.Parameter(torch.empty(shape, dtype=dtype, device=device),
                                                requires_grad=requires_grad)
    elif name in module._buffers:
        old = module._buffers[name]
        if old is not None and tuple(old.shape) == shape:
            return
        dtype = old.dtype if old is not None else torch.get_default_dtype()
        device = old.device if old is not None else None
        module._buffers[name] = torch.empty(shape, dtype=dtype, device=device)
    else:
        raise ValueError(f"structure of {path!r}: the module has no parameter or buffer {name!r}")


def checkpoint_structure(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``"structure"`` entry of a litevision ``.safetensors`` file's metadata (None for any other file)."""
    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get("structure")
    except Exception:  # an unreadable file: load_checkpoint reports it with its own message
        return None
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
