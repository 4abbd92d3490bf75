"""The comparison report: one table (Markdown, CSV, JSON), per-class recall, plots and a self-contained HTML
page (plots embedded as base64 PNG, no external files or scripts)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from litevision.utils.optional import require

# what CompareReport.write puts in the report folder, and the sub-folders compare_models fills
REPORT_FILES = ("compare.md", "compare.csv", "compare.json", "per_class_recall.csv", "per_class_ap.csv",
                "accuracy_vs_*.png", "map_vs_*.png", "index.html")
REPORT_FOLDERS = ("models", "exports")


@dataclass
class CompareRow:
    """One model in a comparison. Accuracy figures are percentages; ``status`` is ``ok`` or ``failed``.
    Classifiers fill ``top1`` ... ``recall`` (per-class recall); detectors ``map``, ``map50``, ``map75`` and
    ``recall`` with the per-class AP."""

    model: str
    weights: str
    status: str = "ok"
    architecture: str = ""  # the registered model it is built from (a pruned network: its original's)
    error: str = ""
    top1: float | None = None
    top5: float | None = None
    balanced_accuracy: float | None = None
    macro_f1: float | None = None
    map: float | None = None
    map50: float | None = None
    map75: float | None = None
    recall: dict[str, float | None] = field(default_factory=dict)
    threshold_line: str | None = None
    params: int | None = None
    macs: int | None = None
    backend: str = "eager"
    latency_ms: float | None = None
    latency_p90_ms: float | None = None
    throughput: float | None = None
    ort_latency_ms: float | None = None  # onnxruntime batch-1 latency, when asked for beside the main backend
    exportable: str = "not checked"
    export_note: str = ""
    train_seconds: float | None = None

    def flat(self) -> dict[str, Any]:
        """One CSV row: scalar fields plus ``recall[<class>]`` columns."""
        d = {k: v for k, v in asdict(self).items() if k != "recall"}
        d.update({f"recall[{k}]": v for k, v in self.recall.items()})
        return d


@dataclass
class CompareReport:
    rows: list[CompareRow]
    setup: dict[str, Any]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"setup": self.setup, "rows": [asdict(r) for r in self.rows], "skipped": self.skipped,
                "notes": self.notes}

    @property
    def detection(self) -> bool:
        return self.setup.get("task") == "detection"

    def _metric_columns(self) -> list[tuple[str, str]]:
        """(row field, column title) of the quality columns: accuracy for classifiers, COCO AP for detectors."""
        if self.detection:
            return [("map", "mAP@[.5:.95] %"), ("map50", "AP50 %"), ("map75", "AP75 %")]
        return [("top1", "top-1 %"), ("balanced_accuracy", "bal. acc %")]

    def markdown(self) -> str:
        s = self.setup
        metric = ("COCO box AP by pycocotools (`litevision.engine.evaluate_task`)" if self.detection
                  else "`litevision.engine.evaluate`")
        cols = self._metric_columns()
        ort = any(r.ort_latency_ms is not None for r in self.rows)
        lines = [
            "# Model comparison", "",
            f"Test set: **{s.get('dataset')}** ({s.get('split')}, {s.get('num_samples')} images), input "
            f"{_size(s.get('input_size'))}, one metric code ({metric}). Speed: "
            f"{s.get('backend')} backend, {s.get('threads')} thread(s), latency at batch 1 (median / p90)"
            + (", post-processing included" if self.detection else "")
            + f", throughput at batch {s.get('bench_batch')}; MACs at the input size.", "",
            "| model | weights | " + " | ".join(t for _, t in cols) + " | params (M) | MACs (M) | "
            "latency ms (median / p90) | " + ("onnxruntime ms | " if ort else "") + "img/s | ONNX, standard ops |",
            "|---|---|" + "---:|" * len(cols) + "---:|---:|---:|" + ("---:|" if ort else "") + "---:|---|",
        ]
        for r in self.rows:
            if r.status != "ok":
                lines.append(f"| {r.model} | {r.weights} | failed: {_md(r.error)} |" + " |" * (len(cols) + 5))
                continue
            lines.append(
                f"| {r.model} | {r.weights} | " + " | ".join(_f(getattr(r, k), 2) for k, _ in cols) + " | "
                f"{_f(r.params and r.params / 1e6, 3)} | {_f(r.macs and r.macs / 1e6, 1)} | "
                f"{_f(r.latency_ms, 2)} / {_f(r.latency_p90_ms, 2)} | "
                + (f"{_f(r.ort_latency_ms, 2)} | " if ort else "") + f"{_f(r.throughput, 1)} | "
                f"{r.exportable}{' (' + _md(r.export_note) + ')' if r.export_note else ''} |")
        classes = self.class_names()
        if classes:
            title = "Per-class AP@[.5:.95] (%)" if self.detection else "Per-class recall (%)"
            lines += ["", f"## {title}", "", "| model | " + " | ".join(classes) + " |",
                      "|---|" + "---:|" * len(classes)]
            for r in self.rows:
                if r.status == "ok":
                    lines.append(f"| {r.model} | " + " | ".join(_f(r.recall.get(c), 1) for c in classes) + " |")
        thresholds = [r for r in self.rows if r.threshold_line]
        if thresholds:
            lines += ["", "## Threshold report (two classes)", ""]
            lines += [f"- {r.model}: `{r.threshold_line}`" for r in thresholds]
        if self.skipped or self.notes:
            lines += ["", "## Notes", ""] + [f"- skipped: {m}" for m in self.skipped] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def class_names(self) -> list[str]:
        for r in self.rows:
            if r.recall:
                return list(r.recall)
        return []

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write compare.md / .csv / .json, per_class_recall.csv, the two plots and index.html."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        per_class = "per_class_ap.csv" if self.detection else "per_class_recall.csv"
        paths = {"markdown": out / "compare.md", "csv": out / "compare.csv", "json": out / "compare.json",
                 "recall_csv": out / per_class}
        paths["markdown"].write_text(self.markdown())
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2, default=str))
        flat = [r.flat() for r in self.rows]
        fields = list(dict.fromkeys(k for row in flat for k in row))
        with paths["csv"].open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(flat)
        with paths["recall_csv"].open("w", newline="") as f:
            writer = csv.writer(f)
            classes = self.class_names()
            writer.writerow(["model", *classes])
            for r in self.rows:
                if r.status == "ok":
                    writer.writerow([r.model, *(r.recall.get(c) for c in classes)])
        plots = self.plots()
        for name, png in plots.items():
            paths[name] = out / f"{name}.png"
            paths[name].write_bytes(png)
        paths["html"] = out / "index.html"
        paths["html"].write_text(self.html(plots))
        return paths

    def plots(self) -> dict[str, bytes]:
        """Quality against cost as PNG bytes (matplotlib Agg): ``accuracy_vs_macs`` and ``accuracy_vs_throughput``
        for classifiers, ``map_vs_latency`` and ``map_vs_macs`` for detectors."""
        matplotlib = require("matplotlib", "report")
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        key, ylabel = (("map", "mAP@[.5:.95] (%)") if self.detection else ("top1", "top-1 (%)"))
        ok = [r for r in self.rows if r.status == "ok" and getattr(r, key) is not None]
        macs = ("MACs (M) at " + _size(self.setup.get("input_size")), lambda r: r.macs / 1e6 if r.macs else None)
        if self.detection:
            specs = {"map_vs_latency": ("mAP vs latency", f"latency (ms, batch 1, {self.setup.get('backend')}, "
                                        "post-processing included)", lambda r: r.latency_ms),
                     "map_vs_macs": ("mAP vs MACs", *macs)}
        else:
            specs = {"accuracy_vs_macs": ("Accuracy vs MACs", *macs),
                     "accuracy_vs_throughput": ("Accuracy vs throughput", f"throughput (img/s, "
                                                f"{self.setup.get('backend')}, batch {self.setup.get('bench_batch')})",
                                                lambda r: r.throughput)}
        out = {}
        for name, (title, xlabel, getx) in specs.items():
            points = [(getx(r), getattr(r, key), r.model) for r in ok if getx(r)]
            if not points:  # no model was measured: no plot with meaningless axes
                continue
            fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
            for curve in _curves(ok, getx, key):  # one architecture at several sizes (pruning ratios): a line
                ax.plot(*zip(*curve), color="0.6", linewidth=1, zorder=0)
            for x, y, _ in points:
                ax.scatter([x], [y], s=40)
            if points and max(p[0] for p in points) / max(min(p[0] for p in points), 1e-9) > 20:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{ylabel} on {self.setup.get('dataset')}")
            ax.grid(True, alpha=0.3)
            ax.margins(x=0.25, y=0.15)  # room for the labels
            ax.set_title(title)
            fig.tight_layout()
            _annotate(fig, ax, points)
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            plt.close(fig)
            out[name] = buf.getvalue()
        return out

    def html(self, plots: dict[str, bytes]) -> str:
        """One self-contained page: setup, table, per-class recall, threshold lines, embedded plots."""
        e = html.escape
        s = self.setup
        cols = self._metric_columns() + ([] if self.detection else [("macro_f1", "macro F1 %")])
        ort = any(r.ort_latency_ms is not None for r in self.rows)
        head = ["model", "weights", *(t for _, t in cols), "params (M)", "MACs (M)", "latency ms median", "p90",
                *(["onnxruntime ms"] if ort else []), "img/s", "ONNX, standard ops"]
        body = []
        for r in self.rows:
            if r.status != "ok":
                body.append(f"<tr><td>{e(r.model)}</td><td>{e(r.weights)}</td>"
                            f"<td colspan='{len(head) - 2}' class='err'>failed: {e(r.error)}</td></tr>")
                continue
            export = e(r.exportable) + (f" <small>({e(r.export_note)})</small>" if r.export_note else "")
            cells = [e(r.model), e(r.weights), *(_f(getattr(r, k), 2) for k, _ in cols),
                     _f(r.params and r.params / 1e6, 3), _f(r.macs and r.macs / 1e6, 1), _f(r.latency_ms, 2),
                     _f(r.latency_p90_ms, 2), *([_f(r.ort_latency_ms, 2)] if ort else []), _f(r.throughput, 1),
                     export]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        classes = self.class_names()
        recall_rows = "".join(
            f"<tr><td>{e(r.model)}</td>" + "".join(f"<td>{_f(r.recall.get(c), 1)}</td>" for c in classes) + "</tr>"
            for r in self.rows if r.status == "ok")
        parts = [
            "<!DOCTYPE html>", "<html lang='en'>", "<head>", "<meta charset='utf-8'>",
            "<title>litevision comparison</title>",
            "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
            "margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}td:first-child,"
            "th:first-child,td:nth-child(2){text-align:left}th{background:#eee}.err{color:#b00;text-align:left}"
            "img{max-width:48%;margin-right:1%}</style>",
            "</head>", "<body>", "<h1>Model comparison</h1>",
            f"<p>Test set <b>{e(str(s.get('dataset')))}</b> ({e(str(s.get('split')))}, {e(str(s.get('num_samples')))}"
            f" images), input {e(_size(s.get('input_size')))}, one metric code. Speed: {e(str(s.get('backend')))}"
            f" backend, {e(str(s.get('threads')))} thread(s), latency at batch 1, throughput at batch "
            f"{e(str(s.get('bench_batch')))}.</p>",
            "<table>", "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>", *body, "</table>",
        ]
        if classes:
            title = "Per-class AP@[.5:.95] (%)" if self.detection else "Per-class recall (%)"
            parts += [f"<h2>{title}</h2>", "<table>",
                      "<tr><th>model</th>" + "".join(f"<th>{e(c)}</th>" for c in classes) + "</tr>", recall_rows,
                      "</table>"]
        lines = [r for r in self.rows if r.threshold_line]
        if lines:
            parts += ["<h2>Threshold report</h2>", "<ul>"]
            parts += [f"<li>{e(r.model)}: <code>{e(r.threshold_line or '')}</code></li>" for r in lines]
            parts.append("</ul>")
        parts.append("<h2>Plots</h2>")
        parts += [f"<img alt='{e(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                  for name, png in plots.items()]
        if self.skipped or self.notes:
            parts += ["<h2>Notes</h2>", "<ul>"]
            parts += [f"<li>skipped: {e(m)}</li>" for m in self.skipped] + [f"<li>{e(n)}</li>" for n in self.notes]
            parts.append("</ul>")
        setup = "".join(f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in s.items())
        parts += ["<h2>Setup</h2>", "<table>", setup, "</table>", "</body>", "</html>"]
        return "\n".join(parts) + "\n"


def _curves(rows: list[CompareRow], getx: Any, key: str) -> list[list[tuple[float, float]]]:
    """The (x, quality) points of each architecture with several rows (a model and its pruned versions),
    ordered by x."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.architecture and getx(r):
            groups.setdefault(r.architecture, []).append((getx(r), getattr(r, key)))
    return [sorted(points) for points in groups.values() if len(points) > 1]


def _size(size: Any) -> str:
    return "x".join(str(v) for v in size[-2:]) if size else "?"


def _f(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _md(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def _annotate(fig: Any, ax: Any, points: list[tuple[float, float, str]]) -> None:
    """Name each point, above it or below it: the first place whose label box overlaps no label placed so far
    (a model and a lightly pruned version of it sit close together)."""
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    offsets = (4, -11, 14, -21)  # points above the point, then below, then further; the last place stays
    for x, y, label in points:
        for dy in offsets:
            note = ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, dy), fontsize=8)
            box = note.get_window_extent(renderer)
            if dy == offsets[-1] or not any(box.overlaps(other) for other in placed):
                break
            note.remove()
        placed.append(box)
