"""``litevision export MODEL --format onnx|onnx-int8|torchscript --output DIR``: fuse, export, verify."""

from __future__ import annotations

import argparse
import sys

from litevision.cli._common import add_command, add_input_size, add_output, check_output_dir, parse_input_size
from litevision.export import FORMATS, RUNTIMES, ExportError, export_files, export_model
from litevision.models import is_litevision_weights, read_metadata, resolve_weights_path

MODEL_HELP = "litevision name, timm:<name>, tv:<name>, or a run folder / weights file of `litevision train`"


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "export", "export a model (fused) to ONNX / INT8 ONNX / TorchScript, verified against "
                                   "PyTorch at batch 1 and > 1")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    add_output(p, "output folder", required=True)
    p.add_argument("--checkpoint", help="weights to load before exporting")
    p.add_argument("--num-classes", type=int, help="classes of a model built by name (default: its card's, 1000 for "
                                                   "ImageNet classifiers)")
    p.add_argument("--in-chans", type=int, help="input channels (default: the model card's, 3 for peers)")
    add_input_size(p)
    p.add_argument("--images", help="real images for the parity check and INT8 calibration: a folder or a dataset "
                                    "name (default: the bundled Fashion-MNIST subset)")
    p.add_argument("--calibration-images", type=int, default=64, help="how many images calibrate INT8")
    p.add_argument("--verify-batch", type=int, default=4, help="the batch > 1 checked besides batch 1")
    p.add_argument("--runtimes", default=",".join(RUNTIMES),
                   help="comma-separated runtimes an ONNX export is verified in (OpenCV DNN at batch 1)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17)")
    p.add_argument("--exporter", choices=("dynamo", "legacy"), default="dynamo",
                   help="torch.export-based or the TorchScript-based ONNX exporter")
    p.add_argument("--min-agreement", type=float, default=0.9,
                   help="INT8: least top-1 agreement with eager on the real images (fraction)")
    p.add_argument("--quantize-se", action="store_true", help="INT8: also quantize squeeze-excite gates")
    p.add_argument("--int8-policy", choices=("full", "dense"), default="full",
                   help="INT8: quantize every supported op (full) or only dense convs / Gemm / Add (dense)")
    p.add_argument("--calibration-method", choices=("percentile", "minmax", "entropy"), default="percentile",
                   help="INT8: activation ranges from the 99.999th percentile, min/max or entropy")
    p.add_argument("--reduce-range", choices=("auto", "yes", "no"), default="auto",
                   help="INT8: 7-bit weights for x86 CPUs without VNNI, where 8-bit ones can saturate "
                        "(auto: decided from this machine's CPU)")
    p.add_argument("--nms", action="store_true",
                   help="detectors: also write MODEL_nms.onnx with in-graph decoding and NonMaxSuppression "
                        "(rows: batch, x1, y1, x2, y2, score, label)")
    p.set_defaults(func=run)


def _model_name(args: argparse.Namespace) -> str:
    if args.checkpoint is None and is_litevision_weights(args.model):
        return str(read_metadata(resolve_weights_path(args.model))["model"])
    return args.model


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.output, export_files(_model_name(args), args.format, nms=args.nms), overwrite=args.overwrite)
    try:
        result = export_model(
            args.model, args.format, args.output, checkpoint=args.checkpoint, num_classes=args.num_classes,
            in_chans=args.in_chans, input_size=parse_input_size(args.input_size), images=args.images,
            calibration_images=args.calibration_images, verify_batch=args.verify_batch, opset=args.opset,
            exporter=args.exporter, min_agreement=args.min_agreement, keep_se_float=not args.quantize_se,
            int8_policy=args.int8_policy, calibration_method=args.calibration_method,
            reduce_range={"auto": None, "yes": True, "no": False}[args.reduce_range],
            runtimes=tuple(r.strip() for r in args.runtimes.split(",") if r.strip()), nms=args.nms,
        )
    except ExportError as e:
        if e.result is not None:
            print(e.result.summary())  # the checks, on stdout like a passing export's
        print(f"litevision export: failed: {e}", file=sys.stderr)
        return 1
    print(result.summary())
    print(f"wrote {', '.join(str(f) for f in result.files)}")
    return 0
