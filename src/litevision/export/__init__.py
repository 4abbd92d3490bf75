"""Deployment: ONNX (fp32, static INT8) and TorchScript export, operator-domain checks and parity checks."""

from litevision.export.api import FORMATS, RUNTIMES, ExportResult, export_files, export_model, load_model_for_deploy
from litevision.export.detection import RAW_OUTPUTS as RAW_DETECTOR_OUTPUTS
from litevision.export.detection import DetectorWithNMS, export_detector, rows_to_detections
from litevision.export.errors import ExportError
from litevision.export.images import load_images
from litevision.export.onnx import check_standard_ops, export_onnx, operator_domains, ort_session, quiet_torch
from litevision.export.quantize import quantize_int8, se_gate_nodes
from litevision.export.torchscript import export_torchscript, load_torchscript
from litevision.export.verify import ParityCheck, check_parity

__all__ = [
    "FORMATS",
    "RAW_DETECTOR_OUTPUTS",
    "RUNTIMES",
    "DetectorWithNMS",
    "ExportError",
    "ExportResult",
    "ParityCheck",
    "check_parity",
    "check_standard_ops",
    "export_detector",
    "export_files",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "load_images",
    "load_model_for_deploy",
    "load_torchscript",
    "operator_domains",
    "ort_session",
    "quantize_int8",
    "quiet_torch",
    "rows_to_detections",
    "se_gate_nodes",
]
