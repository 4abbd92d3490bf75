"""Checkpoint loading: litevision, torchvision, timm and official-layout state dicts, auto-detected.

Loading never executes pickled code: ``.safetensors`` files are read with safetensors and everything
else with ``torch.load(weights_only=True)``.

Detection order, first match wins:
1. the keys are ours (after unwrapping ``model`` / ``state_dict`` and stripping ``module.``);
2. the model's family provides ``remap_state_dict(state_dict) -> state_dict`` that yields our keys;
3. the foreign state dict has the same tensors in the same definition order with the same shapes
   (torchvision/timm models of the same architecture): keys are mapped position by position.
Anything else raises :class:`CheckpointMismatchError` naming missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from litevision.errors import UserError

# where training checkpoints keep the weights: the trained model first (what the official DeiT-style
# LSNet/RepViT scripts evaluate, and timm's ``load_checkpoint`` default), its EMA only on request
_MODEL_KEYS = ("model", "state_dict", "module")
_EMA_KEYS = ("model_ema", "state_dict_ema")
_SKIP_SUFFIX = "num_batches_tracked"


class CheckpointMismatchError(UserError, ValueError):
    """The checkpoint's tensors do not fit the model."""


def read_state_dict(path: str | os.PathLike[str], *, use_ema: bool = False) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors``, ``.pth``, ``.pt`` or ``.bin`` without unpickling code.

    In a training checkpoint holding both, the model's weights are read, or its EMA with ``use_ema``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        with safetensors_errors(path):
            return load_file(str(path), device="cpu")
    try:
        # DeiT-style training checkpoints (the official LSNet/RepViT/EfficientViT scripts) also pickle the
        # run's argparse.Namespace next to the weights: a plain data container, safe to allow
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError for code objects, RuntimeError for corrupt zips
        raise CheckpointReadError(f"cannot read {path} as a weights-only checkpoint: {_first_line(e)}") from None
    return unwrap_state_dict(obj, str(path), use_ema=use_ema)


class CheckpointReadError(UserError, ValueError):
    """A checkpoint file is truncated, corrupt, or holds code instead of data."""


def _first_line(e: BaseException) -> str:
    """The error's first line, without PyTorch's advice to load with ``weights_only=False`` (which would run
    whatever code the file carries: never do that with a file you did not make)."""
    text = str(e).strip()
    if "weights_only" in text or "Weights only load failed" in text:
        return ("it holds pickled Python objects other than tensors and plain data, which are not loaded "
                "(loading them could run code)")
    return (text.splitlines() or [type(e).__name__])[0][:200]


@contextlib.contextmanager
def safetensors_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """A truncated or corrupt ``.safetensors`` file becomes one message naming the file."""
    try:
        yield
    except Exception as e:
        if type(e).__name__ != "SafetensorError" and not isinstance(e, OSError):
            raise
        raise CheckpointReadError(f"{path} is not a complete safetensors file ({_first_line(e)}); "
                                  "it may be truncated: copy or save it again") from None


def unwrap_state_dict(obj: Any, origin: str = "state dict", *, use_ema: bool = False) -> dict[str, Tensor]:
    """Find the tensor mapping inside a training checkpoint and strip DataParallel prefixes.

    ``model`` / ``state_dict`` / ``module`` are preferred over ``model_ema`` / ``state_dict_ema``, the other
    way round with ``use_ema``; either is used when it is the only one."""
    keys = _EMA_KEYS + _MODEL_KEYS if use_ema else _MODEL_KEYS + _EMA_KEYS
    while isinstance(obj, Mapping) and not _is_tensor_map(obj):
        inner = next((obj[k] for k in keys if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            raise CheckpointMismatchError(f"{origin}: no state dict found (top-level keys: {list(obj)[:8]})")
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointMismatchError(f"{origin}: expected a state dict, got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def _is_tensor_map(obj: Mapping[str, Any]) -> bool:
    return bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def _describe_mismatch(own: Mapping[str, Tensor], sd: Mapping[str, Tensor]) -> str:
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            parts.append(f"{label}: {', '.join(items[:5])}{more}")
    return "; ".join(parts)


def _matches(own: Mapping[str, Tensor], sd: Mapping[str, Tensor]) -> bool:
    return own.keys() == sd.keys() and all(own[k].shape == sd[k].shape for k in own)


def _by_position(own: Mapping[str, Tensor], sd: Mapping[str, Tensor]) -> dict[str, Tensor] | None:
    own_keys = [k for k in own if not k.endswith(_SKIP_SUFFIX)]
    src_keys = [k for k in sd if not k.endswith(_SKIP_SUFFIX)]
    if len(own_keys) != len(src_keys):
        return None
    if any(own[a].shape != sd[b].shape for a, b in zip(own_keys, src_keys)):
        return None
    out = {a: sd[b] for a, b in zip(own_keys, src_keys)}
    for k in own:
        if k.endswith(_SKIP_SUFFIX):
            out[k] = sd.get(k, own[k])
    return out


def convert_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Return ``state_dict`` expressed in ``model``'s keys, or raise :class:`CheckpointMismatchError`."""
    own = model.state_dict()
    sd = unwrap_state_dict(dict(state_dict))
    if _matches(own, sd):
        return dict(sd)
    remap = getattr(model, "remap_state_dict", None)
    if callable(remap):
        mapped = remap(sd)
        if mapped is not None and _matches(own, mapped):
            return mapped
    mapped = _by_position(own, sd)
    if mapped is not None:
        return mapped
    name = getattr(model, "model_name", type(model).__name__)
    hint = model.checkpoint_hint(sd) if callable(getattr(model, "checkpoint_hint", None)) else None
    raise CheckpointMismatchError(f"checkpoint does not fit {name}: {hint or _describe_mismatch(own, sd)}")


def load_checkpoint(model: nn.Module, checkpoint: str | os.PathLike[str] | Mapping[str, Tensor], *,
                    use_ema: bool = False) -> nn.Module:
    """Load weights into ``model`` strictly (every tensor must be matched) and return the model.

    ``checkpoint`` is a path (safetensors / torch file, possibly a training checkpoint with the weights
    under ``model`` or ``state_dict``) or an in-memory state dict. Of a checkpoint that also holds an EMA
    (``model_ema`` / ``state_dict_ema``) the model's weights are loaded, the EMA with ``use_ema``.
    """
    target = getattr(model, "model", model) if type(model).__name__ == "FeatureExtractor" else model
    if isinstance(checkpoint, str | os.PathLike):
        sd = read_state_dict(checkpoint, use_ema=use_ema)
    else:
        sd = unwrap_state_dict(dict(checkpoint), use_ema=use_ema)
    target.load_state_dict(convert_state_dict(target, sd), strict=True)
    return model
