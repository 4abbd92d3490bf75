"""``export_model``: build (or load) a model, fuse it for deploy, export it and verify the export.

Formats: ``onnx`` (fp32), ``onnx-int8`` (static QDQ INT8, calibrated on real images; the fp32 ONNX file
is written as well) and ``torchscript``. Every export is checked against the *unfused* eager model on
random inputs and real images at batch 1 and batch > 1 (and at a second input size when the ONNX graph
is dynamic in H/W); a failed check raises :class:`ExportError` after the report is written.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from litevision.errors import UserError
from litevision.export.detection import export_detector
from litevision.export.errors import ExportError
from litevision.export.images import load_images
from litevision.export.onnx import DEFAULT_OPSET, check_standard_ops, export_onnx, ort_session
from litevision.export.quantize import quantize_int8
from litevision.export.torchscript import export_torchscript, load_torchscript
from litevision.export.verify import (
    ParityCheck,
    check_parity,
    format_checks,
    module_runner,
    onnx_runner,
    opencv_runner,
)
from litevision.layers.fuse import fuse_model
from litevision.models import (
    DataConfig,
    Detector,
    create_any_model,
    data_config_from_metadata,
    is_litevision_weights,
    load_trained_model,
    resolve_data_config,
)
from litevision.utils.optional import require

log = logging.getLogger(__name__)

FORMATS = ("onnx", "onnx-int8", "torchscript")
RUNTIMES = ("onnxruntime", "opencv")  # where ONNX exports are verified
SECOND_SIZE_PREFIX = "random@"  # parity inputs at a second, non-square size (dynamic-H/W graphs only)


@dataclass
class ExportResult:
    model: str
    format: str
    path: Path
    input_size: tuple[int, int, int]
    num_classes: int
    files: list[Path] = field(default_factory=list)
    checks: list[ParityCheck] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(path=str(self.path), files=[str(f) for f in self.files], passed=self.passed)
        return d

    def summary(self) -> str:
        head = f"{self.model} -> {self.path} ({self.format}, input {'x'.join(map(str, self.input_size))})"
        lines = [head, format_checks(self.checks)] + [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def export_model(
    model_spec: str | None,
    fmt: str,
    output_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_size: tuple[int, int] | tuple[int, int, int] | None = None,
    model: nn.Module | None = None,
    data_config: DataConfig | None = None,
    images: str | os.PathLike[str] | None = None,
    num_images: int = 16,
    calibration_images: int = 64,
    verify_batch: int = 4,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    min_agreement: float = 0.9,
    keep_se_float: bool = True,
    int8_policy: str = "full",
    calibration_method: str = "percentile",
    reduce_range: bool | None = None,
    runtimes: Sequence[str] = RUNTIMES,
    nms: bool = False,
) -> ExportResult:
    """Export ``model_spec`` (a litevision name, ``timm:<name>`` or ``tv:<name>``) as ``fmt`` into ``output_dir``.

    ``checkpoint``: weights to load; a litevision weights file or run folder also sets the model (then
    ``model_spec`` may be ``None``), its class count and its preprocessing.
    ``model`` may pass an already-built (e.g. trained) model instead of building one from ``model_spec``,
    with ``data_config`` its input size and normalization (default: the model card's).
    ``images``: folder or dataset used for calibration and the real-image parity checks (default: the
    bundled Fashion-MNIST subset). ``input_size``: (H, W) or (C, H, W); default the model card's.
    INT8 options (``keep_se_float``, ``int8_policy``, ``calibration_method``, ``reduce_range``) are those
    of :func:`litevision.export.quantize.quantize_int8`. ``runtimes``: where an ONNX export is verified —
    ``onnxruntime`` (batch 1 and ``verify_batch``, the exported file) and ``opencv`` (OpenCV DNN at batch 1, the
    fp32 graph); a runtime the model card lists in ``runtime_limits`` is skipped with the card's reason.
    ``num_classes`` defaults to the model card's (1000 for ImageNet classifiers).

    A detector is exported as its decoded outputs (``boxes``, ``scores``) for its input size, and with
    ``nms=True`` also with in-graph ``NonMaxSuppression`` (:mod:`litevision.export.detection`); ``onnx`` only.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if verify_batch < 2:
        raise UserError("--verify-batch must be at least 2 (batch 1 is always checked too)")
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown:
        raise UserError(f"unknown runtime {unknown[0]!r}; choose from {', '.join(RUNTIMES)}")
    if fmt != "torchscript":  # before any work: ONNX needs the export extra
        needed = ["onnx", "onnxruntime", "onnxscript"] + (["cv2"] if "opencv" in runtimes else [])
        for module in needed:
            require(module, "export")
    if model is None and checkpoint is None and model_spec and is_litevision_weights(model_spec):
        model_spec, checkpoint = None, model_spec  # a run folder / weights file given as the model
    own_model = model is None
    if model is None:
        model, cfg, model_spec = load_model_for_deploy(model_spec, checkpoint=checkpoint, num_classes=num_classes,
                                                       in_chans=in_chans, input_size=input_size)
    else:
        cfg = data_config or resolve_data_config(model_spec, input_size, in_chans=in_chans)
    if isinstance(model, Detector):
        return _export_detector(model, str(model_spec), fmt, cfg, Path(output_dir), images=images,
                                num_images=num_images, verify_batch=verify_batch, opset=opset, exporter=exporter,
                                runtimes=runtimes, nms=nms)
    if nms:
        raise UserError(f"--nms is for detectors; {model_spec} is a classifier")
    reference = copy.deepcopy(model).eval()
    deploy = fuse_model(model if own_model else copy.deepcopy(model))  # never change the caller's model
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = export_stem(str(model_spec))
    result = ExportResult(model_spec, fmt, out_dir, cfg.input_size, _num_classes(reference, cfg))
    inputs, real = _parity_inputs(cfg, images, num_images, result.notes, need_images=fmt == "onnx-int8")
    log.info("export %s as %s (input %s) into %s, then verify it against PyTorch", model_spec, fmt,
             "x".join(map(str, cfg.input_size)), out_dir)

    if fmt == "torchscript":
        result.path = export_torchscript(deploy, out_dir / f"{stem}.torchscript.pt", input_size=cfg.input_size)
        _add_second_size(inputs, cfg, reference, result.notes)
        result.checks = check_parity(fmt, module_runner(reference), module_runner(load_torchscript(result.path)),
                                     inputs, batch_size=verify_batch, min_agreement=min_agreement)
    else:
        def export_and_check(dynamic_hw: bool | None) -> bool:
            """Export (and quantize) with the given H/W mode, then run the parity checks; True if H/W is dynamic."""
            onnx_info = export_onnx(deploy, out_dir / f"{stem}.onnx", input_size=cfg.input_size, opset=opset,
                                    exporter=exporter, dynamic_hw=dynamic_hw)
            result.files[:] = [onnx_info.path]
            result.notes += [n for n in onnx_info.notes if n not in result.notes]
            result.details.update(opset=onnx_info.opset, exporter=onnx_info.exporter, domains=onnx_info.domains,
                                  cleanup=onnx_info.cleanup,
                                  dynamic_batch=onnx_info.dynamic_batch, dynamic_hw=onnx_info.dynamic_hw)
            checked = dict(inputs)
            if onnx_info.dynamic_hw:
                _add_second_size(checked, cfg, reference, result.notes)
            result.path = onnx_info.path
            if fmt == "onnx-int8":
                # calibrate on training images: the parity check's test images must not have tuned the ranges
                calib = load_images(images, count=calibration_images, cfg=cfg, split="train")
                q = quantize_int8(onnx_info.path, out_dir / f"{stem}_int8.onnx", calib, keep_se_float=keep_se_float,
                                  policy=int8_policy, calibration_method=calibration_method,
                                  reduce_range=reduce_range)
                result.details.update(domains=check_standard_ops(q.path), calibration_images=q.calibration_images,
                                      float_nodes=q.excluded_nodes, quantized_op_types=q.quantized_op_types,
                                      int8_policy=int8_policy, calibration_method=q.calibration_method,
                                      reduce_range=q.reduce_range)
                result.path = q.path
            result.checks = []
            if "onnxruntime" in runtimes:
                result.checks += check_parity(fmt, module_runner(reference), onnx_runner(ort_session(result.path)),
                                              checked, batch_size=verify_batch, quantized=fmt == "onnx-int8",
                                              min_agreement=min_agreement)
            if "opencv" in runtimes:
                result.checks += _check_opencv(onnx_info.path, reference, checked, verify_batch, result)
            return onnx_info.dynamic_hw

        if export_and_check(None) and _only_other_sizes_fail(result.checks):
            # traced at a size where some map is 1x1 (or another size-specific shape), the graph holds a
            # broadcast or reshape valid only at that size: export for the requested size alone instead
            result.notes.append(f"the dynamic-H/W graph fails at other sizes ({_failed_sizes(result.checks)}); "
                                f"re-exported for {cfg.input_size[1]}x{cfg.input_size[2]} only")
            export_and_check(False)
    if result.path not in result.files:
        result.files.append(result.path)
    result.details["real_images"] = real
    report = out_dir / f"{stem}.{fmt}.export.json"
    report.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    result.files.append(report)
    if not result.passed:
        advice = ""
        if fmt == "onnx-int8":  # the failed INT8 file is not deployable: do not leave it next to the fp32 one
            result.path.unlink(missing_ok=True)
            result.files.remove(result.path)
            advice = (" Try --calibration-method minmax or entropy, --int8-policy dense (depthwise convolutions "
                      "and activations stay float), more --calibration-images, or --quantize-se; a briefly "
                      "trained model is often too fragile for INT8: train it longer. The fp32 ONNX file passed.")
        failed = "; ".join(f"{c.inputs} batch {c.batch_size}: {c.message}" for c in result.checks if not c.passed)
        raise ExportError(f"export of {model_spec} as {fmt} does not match eager PyTorch ({failed}).{advice}",
                          result=result)
    return result


def _export_detector(model: Detector, model_spec: str, fmt: str, cfg: DataConfig, out_dir: Path, *,
                     images: str | os.PathLike[str] | None, num_images: int, verify_batch: int, opset: int,
                     exporter: str, runtimes: Sequence[str], nms: bool) -> ExportResult:
    if fmt != "onnx":
        raise UserError(f"detectors are exported as onnx (raw outputs, --nms for in-graph NMS), not {fmt}")
    notes: list[str] = []
    inputs, real = _parity_inputs(cfg, images, num_images, notes, need_images=False)
    log.info("export detector %s (input %s) into %s%s, then verify it against PyTorch", model_spec,
             "x".join(map(str, cfg.input_size)), out_dir, " with in-graph NMS" if nms else "")
    out = export_detector(model, model_spec, cfg, out_dir, stem=export_stem(model_spec), inputs=inputs, nms=nms,
                          verify_batch=verify_batch, opset=opset, exporter=exporter, runtimes=runtimes)
    result = ExportResult(model_spec, fmt, out["path"], cfg.input_size, model.num_classes, files=out["files"],
                          checks=out["checks"], details={**out["details"], "real_images": real},
                          notes=notes + out["notes"])
    report = out_dir / f"{export_stem(model_spec)}.{fmt}.export.json"
    report.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    result.files.append(report)
    if not result.passed:
        failed = "; ".join(f"{c.target} {c.inputs} batch {c.batch_size}: {c.message}" for c in result.checks
                           if not c.passed)
        raise ExportError(f"export of {model_spec} does not match eager PyTorch ({failed})", result=result)
    return result


def export_stem(model_spec: str) -> str:
    """The file-name stem of ``model_spec``'s exports (``timm:a/b`` -> ``timm_a_b``)."""
    return model_spec.replace(":", "_").replace("/", "_")


def export_files(model_spec: str, fmt: str, *, nms: bool = False) -> list[str]:
    """The names :func:`export_model` writes into its output folder for ``model_spec`` as ``fmt``."""
    stem = export_stem(model_spec)
    files = {"onnx": [f"{stem}.onnx", *([f"{stem}_nms.onnx"] if nms else [])],
             "onnx-int8": [f"{stem}.onnx", f"{stem}_int8.onnx"], "torchscript": [f"{stem}.torchscript.pt"]}[fmt]
    return [*files, f"{stem}.{fmt}.export.json"]


def _check_opencv(path: Path, reference: nn.Module, inputs: dict[str, torch.Tensor], verify_batch: int,
                  result: ExportResult) -> list[ParityCheck]:
    """The fp32 graph in OpenCV DNN at batch 1, unless the model card says why OpenCV cannot run it."""
    limit = (getattr(getattr(reference, "card", None), "runtime_limits", None) or {}).get("opencv")
    if limit:
        result.notes.append(f"not verified in OpenCV DNN: {limit}")
        return []
    try:
        runner = opencv_runner(path)
    except Exception as e:  # cv2.error: the importer refuses the graph
        message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        return [ParityCheck(target="opencv", inputs="load", batch_size=1, input_hw=(0, 0), samples=0,
                            max_abs_diff=float("nan"), tolerance=None, top1_agreement=0.0, min_agreement=None,
                            batch_consistency_diff=float("nan"), passed=False,
                            message=f"OpenCV DNN cannot load the graph: {message[:300]}")]
    return check_parity("opencv", module_runner(reference), runner, inputs, batch_size=verify_batch,
                        batch_one_only=True)


def _only_other_sizes_fail(checks: list[ParityCheck]) -> bool:
    """Every check at the export size passed and some check at another size failed."""
    other = [c.inputs.startswith(SECOND_SIZE_PREFIX) for c in checks]
    return any(o and not c.passed for o, c in zip(other, checks)) and all(c.passed for o, c in zip(other, checks)
                                                                           if not o)


def _failed_sizes(checks: list[ParityCheck]) -> str:
    return ", ".join(sorted({"x".join(map(str, c.input_hw)) for c in checks if not c.passed}))


def load_model_for_deploy(
    model_spec: str | None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_size: tuple[int, ...] | None = None,
) -> tuple[nn.Module, DataConfig, str]:
    """(eval-mode model, its input config, its spec) from a spec and/or a checkpoint.

    A litevision weights file or run folder brings its own model name, class count and preprocessing
    (mean/std, crop); ``input_size`` may still override the size. Any other checkpoint is loaded into
    ``model_spec`` built with ``num_classes`` / ``in_chans``.
    """
    if checkpoint is not None and is_litevision_weights(checkpoint):
        model, meta = load_trained_model(checkpoint)
        if model_spec and model_spec != meta["model"]:
            raise UserError(f"{checkpoint} holds a {meta['model']} model, not {model_spec}")
        cfg = data_config_from_metadata(meta)
        if input_size is not None:
            cfg = cfg.replace(input_size=(cfg.input_size[0], *tuple(input_size)[-2:]))
        return model, cfg, str(meta["model"])
    if not model_spec:
        raise UserError("give a MODEL name (or a litevision weights file / run folder as --checkpoint)")
    cfg = resolve_data_config(model_spec, input_size, in_chans=in_chans)
    model = create_any_model(model_spec, num_classes=num_classes, in_chans=cfg.input_size[0],
                             checkpoint_path=checkpoint)
    return model.eval(), cfg, model_spec


def _num_classes(model: nn.Module, cfg: DataConfig) -> int:
    with torch.no_grad():
        return int(model(torch.zeros(1, *cfg.input_size)).shape[-1])


def _parity_inputs(cfg: DataConfig, images: str | os.PathLike[str] | None, count: int, notes: list[str],
                   *, need_images: bool) -> tuple[dict[str, torch.Tensor], str]:
    gen = torch.Generator().manual_seed(0)
    inputs = {"random": torch.randn(4, *cfg.input_size, generator=gen)}
    try:
        inputs["images"] = load_images(images, count=count, cfg=cfg)
        real = str(images or "bundled")
    except UserError as e:
        if need_images or images is not None:
            raise
        notes.append(f"no real images for the parity check ({e}); random inputs only")
        real = ""
    return inputs, real


def _add_second_size(inputs: dict[str, torch.Tensor], cfg: DataConfig, reference: nn.Module, notes: list[str]) -> None:
    """Random inputs at another, non-square size: a dynamic-H/W graph must be right there too."""
    c, h, w = cfg.input_size
    h2, w2 = h + 32, w + 64
    x = torch.randn(2, c, h2, w2, generator=torch.Generator().manual_seed(1))
    try:
        with torch.no_grad():
            reference(x)
    except Exception as e:  # the model itself does not take this size: nothing to compare
        notes.append(f"second input size {h2}x{w2} not checked: the eager model fails there ({type(e).__name__})")
        return
    inputs[f"{SECOND_SIZE_PREFIX}{h2}x{w2}"] = x
