"""ONNX export with a dynamic batch (and H/W where the model allows) and a standard-operator check.

The default exporter is ``torch.export``-based (``dynamo=True``, the default since torch 2.9). Height and
width are declared ``Dim.AUTO``: torch.export keeps them symbolic unless the model's code pins them
(e.g. a reshape to a fixed token count), in which case the graph is static in H/W and
:attr:`OnnxExport.dynamic_hw` says so. ``exporter="legacy"`` uses the TorchScript-based exporter, which
is ~10x faster to run but may bake shapes into the graph (parity checks at two batch sizes catch that).

"Standard operators" means every node, including those inside subgraphs and local functions, belongs
to the ONNX domains ``""`` / ``ai.onnx`` / ``ai.onnx.ml``; INT8 models may additionally be allowed
``com.microsoft`` (only used by onnxruntime's quantizer for types the standard ops lack; our INT8 path
does not need it).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from litevision.errors import UserError
from litevision.export.cleanup import clean_onnx
from litevision.export.errors import ExportError
from litevision.utils.optional import require

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
MIN_OPSET = 17
DEFAULT_OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
EXPORTERS = ("dynamo", "legacy")


@dataclass
class OnnxExport:
    path: Path
    opset: int
    exporter: str
    dynamic_batch: bool
    dynamic_hw: bool
    domains: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cleanup: dict[str, int] = field(default_factory=dict)  # op-type count changes of the clean-up pass


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    input_size: tuple[int, int, int],
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    dynamic_hw: bool | None = None,
    clean: bool = True,
    output_names: Sequence[str] = (OUTPUT_NAME,),
    dynamic_outputs: Mapping[str, Mapping[int, str]] | None = None,
) -> OnnxExport:
    """Export ``model`` (already in eval mode, fused if wanted) to ``path``, run the clean-up pass
    (:func:`litevision.export.cleanup.clean_onnx`: the conventional operator forms every runtime handles;
    ``clean=False`` keeps the exporter's graph) and check its operator domains. ``output_names`` name the
    model's outputs (a detector has ``boxes`` and ``scores``); their first axis is the batch unless
    ``dynamic_outputs`` says otherwise (legacy exporter: ``{"detections": {0: "detections"}}``).

    The example input has batch 2 (torch.export specializes a dimension of size 1). ``dynamic_hw=None``
    asks the model's card (``card.export_dynamic_hw``; True for models without a card). Raises
    :class:`ExportError` if the graph uses operators outside the standard domains.
    """
    notes: list[str] = []
    if dynamic_hw is None:
        card = getattr(model, "card", None)
        dynamic_hw = getattr(card, "export_dynamic_hw", True)
        if not dynamic_hw:
            notes.append(f"exported for {input_size[1]}x{input_size[2]} only: the model card says its graph is "
                         "not size-generic")
    if opset < MIN_OPSET:
        raise UserError(f"opset {opset} is too old: use {MIN_OPSET} or newer")
    if exporter not in EXPORTERS:
        raise UserError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    onnx = require("onnx", "export")
    if exporter == "dynamo":
        require("onnxscript", "export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, *input_size)
    model.eval()
    with quiet_torch(), contextlib.redirect_stdout(io.StringIO()):
        if exporter == "dynamo":
            _export_dynamo(model, example, path, opset, dynamic_hw, notes, list(output_names))
        else:
            outputs = {name: {0: "batch"} for name in output_names} | dict(dynamic_outputs or {})
            _export_legacy(model, example, path, opset, dynamic_hw, outputs)
    cleanup = clean_onnx(path).changed if clean else {}
    proto = onnx.load(str(path), load_external_data=False)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    is_dynamic = [bool(d.dim_param) or not d.HasField("dim_value") for d in dims]
    result = OnnxExport(
        path=path, opset=_opset_of(proto), exporter=exporter, dynamic_batch=is_dynamic[0],
        dynamic_hw=len(is_dynamic) == 4 and is_dynamic[2] and is_dynamic[3], notes=notes, cleanup=cleanup,
    )
    if dynamic_hw and not result.dynamic_hw:
        notes.append("the model fixes its input height/width: the graph is static in H and W")
    result.domains = check_standard_ops(proto)
    return result


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    """Silence torch's warnings and log records below ERROR (torch.export logs every unsolved shape
    inequality as a multi-page traceback at WARNING level) for the duration of an export or compile."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith("torch")]
    loggers.append(logging.getLogger("torch"))
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _export_dynamo(model: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic_hw: bool,
                   notes: list[str], output_names: list[str]) -> None:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=65536)
    shapes = {0: batch, 2: Dim.AUTO, 3: Dim.AUTO} if dynamic_hw else {0: batch}
    try:
        program = torch.onnx.export(model, (example,), None, dynamo=True, opset_version=opset, verbose=False,
                                    dynamic_shapes=(shapes,), input_names=[INPUT_NAME], output_names=output_names)
    except Exception as e:  # torch.export refuses the graph: say why instead of a 100-line trace
        raise ExportError(f"torch.onnx.export (dynamo) failed: {describe_error(e)}") from e
    program.save(str(path), external_data=False)


def _export_legacy(model: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic_hw: bool,
                   outputs: Mapping[str, Mapping[int, str]]) -> None:
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    try:
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=list(outputs),
                          dynamic_axes={INPUT_NAME: axes, **{k: dict(v) for k, v in outputs.items()}})
    except Exception as e:
        raise ExportError(f"torch.onnx.export (legacy) failed: {describe_error(e)}") from e


def describe_error(e: BaseException, limit: int = 400) -> str:
    """One line: the exception and its root cause (the exporter wraps the useful message in a generic one)."""
    root = e
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    parts = [e] if root is e else [e, root]
    text = "; caused by ".join(f"{type(x).__name__}: {_first_line(x)}" for x in parts)
    return text[:limit]


def _first_line(e: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return text.splitlines()[0] if text else ""


def _opset_of(proto: object) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)  # type: ignore[attr-defined]


def operator_domains(proto: object) -> dict[str, list[str]]:
    """``{domain: sorted op types}`` over the graph, its subgraphs and its local functions (inlined)."""
    if proto.functions:  # type: ignore[attr-defined]
        proto = require("onnx.inliner", "export").inline_local_functions(proto)
    found: dict[str, set[str]] = defaultdict(set)
    for node in _walk_nodes(proto.graph.node):  # type: ignore[attr-defined]
        found[node.domain].add(node.op_type)
    return {d: sorted(ops) for d, ops in sorted(found.items())}


def _walk_nodes(nodes: Iterable) -> Iterable:
    onnx = require("onnx", "export")

    for node in nodes:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk_nodes(attr.g.node)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _walk_nodes(g.node)


def check_standard_ops(model: object, *, allow_domains: Iterable[str] = ()) -> dict[str, list[str]]:
    """Raise :class:`ExportError` naming every node outside the standard domains (+ ``allow_domains``).

    ``model`` is an ``onnx.ModelProto`` or a path. Returns the domain → op types map.
    """
    onnx = require("onnx", "export")

    proto = onnx.load(str(model), load_external_data=False) if isinstance(model, str | os.PathLike) else model
    domains = operator_domains(proto)
    allowed = STANDARD_DOMAINS | set(allow_domains)
    custom = {d: ops for d, ops in domains.items() if d not in allowed}
    if custom:
        listing = "; ".join(f"{d}: {', '.join(ops)}" for d, ops in custom.items())
        raise ExportError(f"the ONNX graph needs custom operators ({listing}); only standard ONNX domains deploy "
                          "without a custom runtime")
    return domains


def ort_session(path: str | os.PathLike[str], *, threads: int | None = None) -> object:
    """An onnxruntime CPU session with all graph optimizations and a fixed intra-op thread count."""
    ort = require("onnxruntime", "export")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
