"""The graph clean-up pass run after every ONNX export: the conventional operator forms every runtime handles.

``torch.onnx.export(dynamo=True)`` writes global average pooling as ``ReduceMean`` over H and W (axes as an
input, opset 18) and flattening as ``Reshape``. onnxruntime runs both, but OpenCV DNN computes such graphs
wrongly (MobileNetV3: relative error 0.4-1.0) and onnxruntime keeps the squeeze-excite blocks around a
``ReduceMean`` out of its NCHWc layout. The TorchScript-based exporter writes ``GlobalAveragePool`` and
``Flatten``; this pass rewrites dynamo graphs to the same forms, with onnxscript's optimizer (constant
folding, dead-code removal, no ``Identity`` chains) and its pattern rewriter rather than hand-edited protobufs:

* ``ReduceMean(x, axes=[2, 3], keepdims=1)`` on a 4-D ``x`` -> ``GlobalAveragePool(x)``;
* the same with ``keepdims=0`` -> ``Flatten(GlobalAveragePool(x))``;
* ``Reshape(x, shape)`` of a tensor to ``(batch, features)`` -> ``Flatten(x, axis=1)``;
* attributes written at their default value are dropped (``HardSigmoid``'s ``beta=0.5``, ``Gemm``'s
  ``alpha=1``...). This one is a correctness fix: OpenCV DNN 5.1 fuses ``Mul(x, HardSigmoid(g))`` into a
  hard-swish of ``g`` when ``beta`` is written out, so every squeeze-excite gate of MobileNetV3 came out with
  the gate's shape (relative error ~1.0); dynamo writes ``beta``, the TorchScript-based exporter does not.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litevision.utils.optional import require


@dataclass
class CleanupResult:
    """What the pass changed: op-type counts before and after."""

    path: Path
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    defaults_dropped: int = 0  # attributes removed because they were written at their default value

    @property
    def changed(self) -> dict[str, int]:
        ops = set(self.before) | set(self.after)
        return {op: self.after.get(op, 0) - self.before.get(op, 0) for op in sorted(ops)
                if self.after.get(op, 0) != self.before.get(op, 0)}


def _spatial_axes(axes: Any, rank: int | None) -> bool:
    values = axes.const_value.numpy().tolist() if axes is not None and axes.const_value is not None else None
    if values is None or rank != 4:
        return False
    return sorted(v % 4 for v in values) == [2, 3]


def _rules() -> list[Any]:
    rewriter = require("onnxscript.rewriter", "export")

    class ReduceMeanToGlobalAveragePool(rewriter.RewriteRuleClassBase):
        """Spatial mean with kept dimensions is global average pooling."""

        def pattern(self, op: Any, x: Any, axes: Any) -> Any:
            return op.ReduceMean(x, axes, _outputs=["out"])

        def check(self, context: Any, x: Any, axes: Any, out: Any) -> Any:
            result = rewriter.MatchResult()
            node = out.producer()
            if node.attributes.get_int("keepdims", 1) != 1 or node.attributes.get_int("noop_with_empty_axes", 0):
                return result.fail("keepdims=0")
            rank = len(x.shape) if x.shape is not None else None
            return result if _spatial_axes(axes, rank) else result.fail("not a spatial mean of a 4-D tensor")

        def rewrite(self, op: Any, x: Any, axes: Any, out: Any) -> Any:
            return op.GlobalAveragePool(x)

    class ReduceMeanToGlobalAveragePoolFlatten(rewriter.RewriteRuleClassBase):
        """Spatial mean without kept dimensions is global average pooling, then flattening."""

        def pattern(self, op: Any, x: Any, axes: Any) -> Any:
            return op.ReduceMean(x, axes, _outputs=["out"])

        def check(self, context: Any, x: Any, axes: Any, out: Any) -> Any:
            result = rewriter.MatchResult()
            if out.producer().attributes.get_int("keepdims", 1) != 0:
                return result.fail("keepdims=1")
            rank = len(x.shape) if x.shape is not None else None
            return result if _spatial_axes(axes, rank) else result.fail("not a spatial mean of a 4-D tensor")

        def rewrite(self, op: Any, x: Any, axes: Any, out: Any) -> Any:
            return op.Flatten(op.GlobalAveragePool(x), axis=1)

    class ReshapeToFlatten(rewriter.RewriteRuleClassBase):
        """A reshape that keeps the batch and merges everything else is ``Flatten(axis=1)``."""

        def pattern(self, op: Any, x: Any, shape: Any) -> Any:
            return op.Reshape(x, shape, _outputs=["out"])

        def check(self, context: Any, x: Any, shape: Any, out: Any) -> Any:
            result = rewriter.MatchResult()
            src, dst = x.shape, out.shape
            if src is None or dst is None or len(src) < 2 or len(dst) != 2:
                return result.fail("shapes unknown or not a flattening")
            rest = src[1:]
            if not all(isinstance(d, int) for d in rest) or dst[1] != _prod(rest):
                return result.fail("the non-batch dimensions are not merged")
            if dst[0] != src[0]:
                return result.fail("the batch dimension changes")
            return result

        def rewrite(self, op: Any, x: Any, shape: Any, out: Any) -> Any:
            return op.Flatten(x, axis=1)

    return [ReduceMeanToGlobalAveragePool.rule(), ReduceMeanToGlobalAveragePoolFlatten.rule(),
            ReshapeToFlatten.rule()]


# op type -> {attribute: default}: attributes written at these values are dropped (the ONNX operator defaults)
DEFAULT_ATTRIBUTES: dict[str, dict[str, float | int]] = {
    "HardSigmoid": {"alpha": 0.2, "beta": 0.5},
    "Gemm": {"alpha": 1.0, "beta": 1.0, "transA": 0},
    "LeakyRelu": {"alpha": 0.01},
    "Elu": {"alpha": 1.0},
}


def _drop_default_attributes(model: Any) -> int:
    """Remove attributes equal to the operator's default; returns how many were removed."""
    removed = 0
    for node in model.graph.all_nodes():
        defaults = DEFAULT_ATTRIBUTES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        for name, default in (defaults or {}).items():
            attr = node.attributes.get(name)
            if attr is not None and abs(float(attr.value) - default) < 1e-7:
                del node.attributes[name]
                removed += 1
    return removed


def _prod(values: Any) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _op_counts(proto: Any) -> dict[str, int]:
    return dict(Counter(node.op_type for node in proto.graph.node))


def clean_onnx(path: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None) -> CleanupResult:
    """Rewrite the ONNX file at ``path`` (in place, or into ``out_path``) into the conventional forms above, fold
    constants, drop dead nodes and ``Identity`` chains, and store inferred shapes."""
    onnx = require("onnx", "export")
    onnxscript = require("onnxscript", "export")
    rewriter = require("onnxscript.rewriter", "export")
    path = Path(path)
    out = Path(out_path) if out_path is not None else path
    proto = onnx.load(str(path))
    result = CleanupResult(out, before=_op_counts(proto))
    model = onnxscript.ir.serde.deserialize_model(proto)
    onnxscript.optimizer.optimize(model)  # constant folding, dead code, identity removal, shape inference
    # then our rules alone: the optimizer's default rules would turn Flatten back into Reshape
    rewriter.rewrite(model, pattern_rewrite_rules=_rules())
    require("onnx_ir.passes.common", "export").RemoveUnusedNodesPass()(model)  # the axes / shapes left over
    result.defaults_dropped = _drop_default_attributes(model)
    cleaned = onnxscript.ir.serde.serialize_model(model)
    cleaned = onnx.shape_inference.infer_shapes(cleaned)
    onnx.checker.check_model(cleaned)
    onnx.save(cleaned, str(out))
    result.after = _op_counts(cleaned)
    return result
