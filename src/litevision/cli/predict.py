"""``litevision predict``: run trained weights on image files. A detector's boxes are drawn onto the images
(``<output>/<image>.png``) and written as COCO results (``detections.json``, plus ``predictions.json`` with
class names); a classifier's top classes are printed and written to ``predictions.json``."""

from __future__ import annotations

import argparse
import json

from litevision.cli._common import add_command, add_output, check_output_dir
from litevision.engine.predict import coco_results, predict_images, save_drawings, write_predictions
from litevision.models import read_metadata, resolve_weights_path
from litevision.utils import atomic_write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "predict", "run trained weights on images: boxes drawn and COCO-format JSON for detectors, top "
        "classes for classifiers",
        "Run a run folder or weights file written by litevision train on image files, with the preprocessing "
        "it was trained with. Detectors: every image with its boxes drawn and the detections as COCO results "
        "(original image pixels); classifiers: the top classes of each image.")
    p.add_argument("weights", metavar="RUN", help="a run folder or a .safetensors written by litevision train")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument("--score-thresh", type=float,
                   help="detectors: keep boxes scoring at least this (default: the model's own threshold)")
    p.add_argument("--top-k", type=int, default=5, help="classifiers: how many classes to list per image")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    add_output(p, "folder for the drawings and JSON files", default="predictions")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    meta = read_metadata(resolve_weights_path(args.weights))  # a wrong path is named before any work
    detector = meta.get("task") == "detection"
    files = ["predictions.json"] + (["detections.json"] + [f"{p.rsplit('/', 1)[-1].rsplit('.', 1)[0]}*.png"
                                                          for p in args.images] if detector else [])
    out = check_output_dir(args.output, files, overwrite=args.overwrite)
    preds = predict_images(args.weights, args.images, score_thresh=args.score_thresh, top_k=args.top_k,
                           device=args.device)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(preds, out / "predictions.json")
    if detector:
        rows = coco_results(preds, meta.get("category_ids"))
        atomic_write_text(out / "detections.json", json.dumps(rows, indent=2))
        drawn = save_drawings(preds, out, list(meta.get("class_names") or []))
        for p in preds:
            print(f"{p.file}: {len(p.scores)} objects" + "".join(
                f"\n  {n} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]" for n, s, b in zip(p.labels, p.scores,
                                                                                         p.boxes)))
        print(f"wrote {out / 'detections.json'}, {out / 'predictions.json'} and {len(drawn)} drawings in {out}")
    else:
        for p in preds:
            print(f"{p.file}: " + ", ".join(f"{n} {prob:.3f}" for n, prob in p.classes))
        print(f"wrote {out / 'predictions.json'}")
    return 0
