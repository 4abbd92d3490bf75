"""TorchScript export by tracing (``torch.jit.trace``), saved with ``torch.jit.save``.

Tracing records the operations run for one example input; Python control flow and shape arithmetic done
with Python ints are frozen into the graph. The example has batch 2 so a batch size baked in by mistake
shows up in the parity checks at batch 1 and batch > 1 instead of passing silently.
TorchScript is deprecated upstream (torch 2.14 warns); it is kept for C++ deployments (libtorch).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from litevision.export.errors import ExportError


def export_torchscript(model: nn.Module, path: str | os.PathLike[str], *, input_size: tuple[int, int, int]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, *input_size)
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(model, example, check_trace=False)
        except Exception as e:
            raise ExportError(f"torch.jit.trace failed: {type(e).__name__}: {str(e).strip().splitlines()[0]}") from e
        torch.jit.save(traced, str(path))
    return path


def load_torchscript(path: str | os.PathLike[str]) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").eval()
