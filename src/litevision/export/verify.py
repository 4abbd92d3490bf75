"""Parity of an exported model with eager PyTorch, at batch 1 and at batch > 1.

A graph can be right at batch 1 and wrong at batch > 1 (a batch size baked in as a constant, a reshape
that mixes samples), so every input set is run both ways: one sample per call, and ``batch_size`` samples
per call. Each run is compared with the eager model (max abs difference of the logits, top-1 agreement),
and the export's batched output is compared with its own per-sample output (batch consistency).

Pass criteria: float exports must match eager logits within ``atol + rtol * max|logits|``; INT8 exports
must agree on top-1 for at least ``min_agreement`` of the real images. Every export must be batch
consistent (within the float tolerance; INT8 per-sample results are bit-for-bit the same in onnxruntime,
so the same tolerance applies).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from litevision.utils.optional import require

Runner = Callable[[Tensor], Tensor]


@dataclass
class ParityCheck:
    target: str
    inputs: str
    batch_size: int
    input_hw: tuple[int, int]
    samples: int
    max_abs_diff: float
    tolerance: float | None
    top1_agreement: float
    min_agreement: float | None
    batch_consistency_diff: float
    passed: bool
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def onnx_runner(session: object) -> Runner:
    input_name = session.get_inputs()[0].name  # type: ignore[attr-defined]

    def run(x: Tensor) -> Tensor:
        out = session.run(None, {input_name: x.numpy().astype(np.float32)})[0]  # type: ignore[attr-defined]
        return torch.from_numpy(out)

    return run


def opencv_runner(path: str | os.PathLike[str]) -> Runner:
    """The ONNX file in OpenCV DNN (CPU, its own engine). Raises ``cv2.error`` when it cannot load the graph."""
    cv2 = require("cv2", "export")
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def run(x: Tensor) -> Tensor:
        net.setInput(np.ascontiguousarray(x.numpy().astype(np.float32)))
        return torch.from_numpy(np.array(net.forward(), dtype=np.float32))

    return run


def module_runner(module: nn.Module) -> Runner:
    def run(x: Tensor) -> Tensor:
        with torch.no_grad():
            return module(x)

    return run


def _run_batched(runner: Runner, x: Tensor, batch_size: int) -> Tensor:
    return torch.cat([runner(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def _try_run(runner: Runner, x: Tensor, batch_size: int) -> Tensor | str:
    try:
        return _run_batched(runner, x, batch_size)
    except Exception as e:  # e.g. onnxruntime rejects a shape baked into the graph
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]


def _run_failure(out: Tensor | str, per_sample: Tensor | str, ref: Tensor) -> str:
    """Why the outputs cannot even be compared ("" when they can)."""
    if isinstance(out, str):
        return f"the export fails to run: {out}"
    if isinstance(per_sample, str):
        return f"the export fails to run at batch 1: {per_sample}"
    for got in (out, per_sample):
        if got.shape != ref.shape:
            return (f"output shape {tuple(got.shape)} != eager {tuple(ref.shape)} (a batch size or input size "
                    "baked into the graph?)")
    return ""


def check_parity(
    target: str,
    reference: Runner,
    exported: Runner,
    inputs: dict[str, Tensor],
    *,
    batch_size: int = 4,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    quantized: bool = False,
    min_agreement: float = 0.9,
    batch_one_only: bool = False,
) -> list[ParityCheck]:
    """Compare ``exported`` with ``reference`` on each named input set at batch 1 and ``batch_size`` (only at
    batch 1 with ``batch_one_only``: runtimes that fix the batch when they load a graph, as OpenCV DNN does).

    ``inputs`` maps a name (``"random"``, ``"images"``, ``"random@96x80"``) to an (N, C, H, W) tensor.
    For ``quantized`` exports the logit difference is reported, not judged; top-1 agreement on input sets
    named ``images`` must reach ``min_agreement``.
    """
    if batch_size < 2:
        raise ValueError("batch_size must be > 1: batch 1 is always checked as well")
    sizes = (1,) if batch_one_only else (1, batch_size)
    checks = []
    for name, x in inputs.items():
        ref = _run_batched(reference, x, batch_size)
        scale = float(ref.abs().max())
        tol = atol + rtol * scale
        per_sample = _try_run(exported, x, 1)
        for bs in sizes:
            out = per_sample if bs == 1 else _try_run(exported, x, bs)
            hw = (x.shape[-2], x.shape[-1])
            failure = _run_failure(out, per_sample, ref)
            if failure:
                checks.append(ParityCheck(
                    target=target, inputs=name, batch_size=bs, input_hw=hw, samples=x.shape[0],
                    max_abs_diff=float("nan"), tolerance=None, top1_agreement=0.0, min_agreement=None,
                    batch_consistency_diff=float("nan"), passed=False, message=failure,
                ))
                continue
            diff = float((out - ref).abs().max())
            agreement = float((out.argmax(1) == ref.argmax(1)).float().mean())
            consistency = float((out - per_sample).abs().max())
            problems, notes = [], []
            if quantized and name != "images":
                notes.append("INT8 top-1 agreement is judged on real images only")
            if not quantized and diff > tol:
                problems.append(f"max |diff| {diff:.3g} > tolerance {tol:.3g}")
            if quantized and name == "images" and agreement < min_agreement:
                problems.append(f"top-1 agreement {agreement:.1%} < {min_agreement:.0%}")
            if consistency > tol:
                problems.append(f"batch {bs} output differs from per-sample output by {consistency:.3g}")
            checks.append(ParityCheck(
                target=target, inputs=name, batch_size=bs, input_hw=hw, samples=x.shape[0], max_abs_diff=diff,
                tolerance=None if quantized else tol, top1_agreement=agreement,
                min_agreement=min_agreement if quantized and name == "images" else None,
                batch_consistency_diff=consistency, passed=not problems, message="; ".join(problems or notes),
            ))
    return checks


def format_checks(checks: list[ParityCheck]) -> str:
    lines = []
    for c in checks:
        status = "ok  " if c.passed else "FAIL"
        lines.append(f"  {status} {c.target:<12} {c.inputs:<14} batch {c.batch_size:<3} {c.input_hw[0]}x{c.input_hw[1]}"
                     f"  max|diff| {c.max_abs_diff:.2e}  top-1 agree {c.top1_agreement:6.1%}"
                     + (f"  ({c.message})" if c.message else ""))
    return "\n".join(lines)
