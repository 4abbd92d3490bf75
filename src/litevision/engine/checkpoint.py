"""Checkpoints that lose nothing: atomic writes, safetensors weights, code-free trainer state.

A resumable checkpoint is a pair in ``<run>/checkpoints/``: ``step-<N>.safetensors`` (the model's
weights) and ``step-<N>.state.pt`` (optimizer, scheduler, EMA, grad scaler, RNG states, position), both
written to a temporary file, flushed to disk and renamed into place. Only then is ``<run>/last.json``
(the pointer ``--resume`` follows) replaced, atomically, to name the new pair, and older pairs pruned.
A ``kill -9`` at any instant therefore leaves the previous pointer and the pair it names intact.

Trainer state is read with ``torch.load(weights_only=True)``: it holds only tensors, numbers, strings
and containers, so loading a checkpoint can never execute code.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from litevision.errors import UserError
from litevision.models import save_weights
from litevision.utils.io import atomic_write, atomic_write_text

POINTER = "last.json"
CHECKPOINT_DIR = "checkpoints"


def save_state(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"cannot read trainer state {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


# ---------------------------------------------------------------------------------------------------------
# RNG state as weights-only-safe containers


def capture_rng_state() -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(mt), gauss],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------------------
# the run folder's resumable checkpoints


class CheckpointStore:
    """Resumable checkpoints of one run folder (see the module docstring for the protocol)."""

    def __init__(self, run_dir: str | os.PathLike[str], keep: int = 2) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / CHECKPOINT_DIR
        self.keep = max(1, keep)

    def save(self, step: int, weights: Mapping[str, Tensor], state: Mapping[str, Any],
             metadata: Mapping[str, Any]) -> Path:
        stem = f"step-{step:09d}"
        weights_path = save_weights(self.dir / f"{stem}.safetensors", weights, metadata)
        save_state(self.dir / f"{stem}.state.pt", state)
        pointer = {"step": step, "weights": f"{CHECKPOINT_DIR}/{stem}.safetensors",
                   "state": f"{CHECKPOINT_DIR}/{stem}.state.pt"}
        atomic_write_text(self.run_dir / POINTER, json.dumps(pointer))
        self._prune(keep_stem=stem)
        return weights_path

    def _prune(self, keep_stem: str) -> None:
        stems = sorted({p.name.split(".")[0] for p in self.dir.glob("step-*.*")})
        for stem in stems[: max(0, len(stems) - self.keep)]:
            if stem != keep_stem:
                for p in self.dir.glob(f"{stem}.*"):
                    p.unlink(missing_ok=True)
        for tmp in self.dir.glob(".*.tmp"):  # left by a killed writer
            tmp.unlink(missing_ok=True)

    def latest(self) -> tuple[Path, Path, int] | None:
        """``(weights, state, step)`` named by the pointer, or ``None`` when the run has no checkpoint yet."""
        pointer = self.run_dir / POINTER
        if not pointer.is_file():
            return None
        try:
            info = json.loads(pointer.read_text())
        except json.JSONDecodeError as e:  # cannot happen with atomic writes; say so clearly if it does
            raise UserError(f"{pointer} is corrupt ({e}); delete it to resume from scratch") from None
        weights, state = self.run_dir / info["weights"], self.run_dir / info["state"]
        if not weights.is_file() or not state.is_file():
            raise UserError(f"{pointer} names {weights.name} / {state.name}, which are missing")
        return weights, state, int(info["step"])
