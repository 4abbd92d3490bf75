"""Static INT8 quantization of an exported fp32 ONNX model with onnxruntime (QDQ format, per-channel).

Pipeline: ``quant_pre_process`` (symbolic shape inference + graph optimization; the quantizer needs the
shapes, and dynamo-exported graphs fail without it) → ``quantize_static`` with MinMax calibration on
real images, uint8 activations, int8 per-channel weights, QDQ nodes (standard ``QuantizeLinear`` /
``DequantizeLinear``; onnxruntime fuses them into integer kernels at load time).

Squeeze-excite gates quantize badly: the gate's sigmoid/hard-sigmoid output multiplies a whole feature
map, so an 8-bit gate error becomes a per-channel scale error everywhere downstream (MobileNetV3,
EfficientNet). :func:`se_gate_nodes` finds those gate branches (global pooling → ... → Mul) and the
default policy keeps them in float; they run on 1x1 tensors, so this costs no speed.

On x86-64 CPUs without VNNI (AVX2, AVX-512 without VNNI) onnxruntime's u8×s8 kernels add pairs of
products in 16-bit registers (``vpmaddubsw``), which saturate with full-range 8-bit weights; there the
weights are quantized to 7 bits (onnxruntime's ``reduce_range``), by default decided from the CPU that
runs the quantization (:func:`cpu_lacks_vnni`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import Tensor

from litevision.export.errors import ExportError
from litevision.export.onnx import describe_error
from litevision.utils.cpu import cpu_lacks_vnni
from litevision.utils.optional import require

POOL_OPS = frozenset({"GlobalAveragePool", "ReduceMean", "GlobalMaxPool", "ReduceMax"})
GATE_OPS = frozenset({"Mul"})
POLICIES = ("full", "dense")
CALIBRATION_METHODS = ("percentile", "minmax", "entropy")
DENSE_OPS = ("Conv", "Gemm", "MatMul", "Add")


@dataclass
class QuantizeResult:
    path: Path
    calibration_images: int
    excluded_nodes: list[str] = field(default_factory=list)
    quantized_op_types: list[str] = field(default_factory=list)
    calibration_method: str = "percentile"  # the one used: histogram methods fall back to min/max on a flat tensor
    reduce_range: bool = False  # 7-bit weights (for x86 CPUs without VNNI)


def quantize_int8(
    fp32_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    calibration: Tensor,
    *,
    per_channel: bool = True,
    keep_se_float: bool = True,
    policy: str = "full",
    calibration_method: str = "percentile",
    exclude_nodes: Iterable[str] = (),
    op_types: Iterable[str] | None = None,
    reduce_range: bool | None = None,
) -> QuantizeResult:
    """Quantize ``fp32_path`` into ``out_path`` calibrated on ``calibration`` (N, C, H, W) images.

    ``policy``: ``"full"`` quantizes every op type onnxruntime supports; ``"dense"`` only dense
    convolutions, ``Gemm``/``MatMul`` and residual ``Add`` (depthwise convolutions and activations stay
    float: onnxruntime's int8 depthwise kernel is slower than its fp32 one, and hard-swish has no int8
    kernel, see docs/deploy.md). ``calibration_method``: activation ranges from the 99.999th percentile
    of the calibration activations (default: a few outliers no longer stretch the 256 levels; MobileNetV3's
    top-1 agreement with fp32 went from 98.6% with ``"minmax"`` to 99.1%), their min/max, or the
    entropy (KL) criterion. ``keep_se_float`` leaves squeeze-excite gate branches in float;
    ``exclude_nodes`` adds node names; ``op_types`` overrides the op types to quantize. ``reduce_range``:
    7-bit weights against int16 saturation on CPUs without VNNI; ``None`` decides for this machine
    (:func:`cpu_lacks_vnni`) — pass ``True`` when the file is for such a CPU and made elsewhere.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown quantization policy {policy!r}; choose from {', '.join(POLICIES)}")
    if calibration_method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {calibration_method!r}; choose from "
                         f"{', '.join(CALIBRATION_METHODS)}")
    onnx = require("onnx", "export")
    require("onnxruntime", "export")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if reduce_range is None:
        reduce_range = cpu_lacks_vnni()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        _pre_process(quant_pre_process, fp32_path, pre)
        proto = onnx.load(str(pre))
        excluded = set(exclude_nodes)
        if keep_se_float:
            excluded |= se_gate_nodes(proto)
        if policy == "dense":
            excluded |= depthwise_conv_nodes(proto)
            op_types = op_types or DENSE_OPS
        input_name = proto.graph.input[0].name
        samples = [calibration[i : i + 1].numpy().astype(np.float32) for i in range(calibration.shape[0])]

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter(samples)

            def get_next(self) -> dict[str, np.ndarray] | None:
                x = next(self._it, None)
                return None if x is None else {input_name: x}

        methods = {"percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax,
                   "entropy": CalibrationMethod.Entropy}
        used = calibration_method

        def quantize(method: str) -> None:
            quantize_static(
                str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=sorted(excluded) or None,
                op_types_to_quantize=list(op_types) if op_types else None, calibrate_method=methods[method],
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )

        try:
            quantize(calibration_method)
        except ValueError as e:  # histogram calibrators fail on a tensor with (almost) no range
            if calibration_method == "minmax" or "bins" not in str(e):
                raise
            used = "minmax"
            quantize(used)
    quantized = onnx.load(str(out_path), load_external_data=False)
    ops = _quantized_op_types(quantized)
    return QuantizeResult(out_path, len(samples), sorted(excluded), ops, calibration_method=used,
                          reduce_range=reduce_range)


def _pre_process(quant_pre_process: object, fp32_path: str | os.PathLike[str], out: Path) -> None:
    """onnxruntime's quantization pre-processing: symbolic shape inference, else ONNX's own shape inference.

    The symbolic pass gives up on some graphs (e.g. LSNet's attention-bias gather with a symbolic size);
    ONNX shape inference then still gives the quantizer the shapes it needs. When it gives up, onnxruntime
    saves a debug copy of the model (``sym_shape_infer_temp.onnx`` plus a weights file) in the *current
    directory*: it runs in a scratch directory so nothing lands in the user's working tree."""

    src, dst = str(Path(fp32_path).resolve()), str(Path(out).resolve())
    with tempfile.TemporaryDirectory(prefix="litevision-quant-") as scratch, contextlib.chdir(scratch):
        try:
            quant_pre_process(src, dst)  # type: ignore[operator]
            return
        except Exception as first:  # noqa: BLE001 - onnxruntime raises a bare Exception here
            try:
                quant_pre_process(src, dst, skip_symbolic_shape=True)  # type: ignore[operator]
            except Exception as e:  # noqa: BLE001
                raise ExportError(f"INT8 pre-processing failed: {describe_error(first)}; without symbolic "
                                  f"shapes: {describe_error(e)}") from e


def se_gate_nodes(proto: object) -> set[str]:
    """Names of nodes on squeeze-excite gate branches: from a global pooling forward to a gating ``Mul``.

    A branch counts only if it ends in a ``Mul`` (the gate); a pooling that leads to the classifier is
    left alone. The pooling and the ``Mul`` themselves stay quantizable.
    """
    graph = proto.graph  # type: ignore[attr-defined]
    consumers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    gate: set[str] = set()
    for pool in (n for n in graph.node if n.op_type in POOL_OPS):
        branch: list = []
        reached_gate = False
        frontier = [c for out in pool.output for c in consumers[out]]
        seen: set[str] = set()
        while frontier:
            node = frontier.pop()
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in GATE_OPS:
                reached_gate = True
                continue
            branch.append(node)
            if len(branch) > 16:  # not a gate: a whole network follows this pooling
                break
            frontier += [c for out in node.output for c in consumers[out]]
        if reached_gate and len(branch) <= 16:
            gate |= {n.name for n in branch}
    return gate


def depthwise_conv_nodes(proto: object) -> set[str]:
    """Names of grouped ``Conv`` nodes (depthwise and group convolutions)."""
    return {n.name for n in proto.graph.node  # type: ignore[attr-defined]
            if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)}


def _quantized_op_types(proto: object) -> list[str]:
    """Op types that consume a DequantizeLinear output (i.e. run on quantized inputs)."""
    graph = proto.graph  # type: ignore[attr-defined]
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return sorted({n.op_type for n in graph.node if n.op_type != "QuantizeLinear" and set(n.input) & dq_outputs})
