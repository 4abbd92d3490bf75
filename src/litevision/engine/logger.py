"""Run logs: ``log.jsonl`` (every step line and epoch line), ``log.csv`` (one row per epoch) and
TensorBoard events when ``tensorboard`` is installed. Only the main process writes.

On resume the logs are cut back to the checkpoint's step, so a run killed after logging but before its
next checkpoint does not report the redone steps twice.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litevision.utils.io import atomic_write_text
from litevision.utils.optional import available

LEADING_FIELDS = ("epoch", "step", "lr", "train_loss")
TRAILING_FIELDS = ("epoch_time_s", "images_per_s", "bad_images")


def epoch_fields(metrics: Sequence[str]) -> list[str]:
    """log.csv's columns: progress, the task's validation metrics (plain and EMA), speed."""
    return [*LEADING_FIELDS, *(f"{p}_{m}" for p in ("val", "ema_val") for m in metrics), *TRAILING_FIELDS]


class RunLogger:
    def __init__(self, run_dir: Path, *, metrics: Sequence[str] = ("top1", "top5", "loss"), enabled: bool = True,
                 tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.fields = epoch_fields(metrics)
        self.jsonl = run_dir / "log.jsonl"
        self.csv = run_dir / "log.csv"
        self._tb_dir = run_dir / "tensorboard" if enabled and tensorboard and available("tensorboard") else None
        self._tb: Any = None

    @property
    def tb(self) -> Any:
        """The TensorBoard writer, created at the first record (nothing is written before the run starts)."""
        if self._tb is None and self._tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # tensorboard is optional

            self._tb = SummaryWriter(str(self._tb_dir))
        return self._tb

    def truncate(self, step: int) -> None:
        """Drop lines logged after ``step`` (called on resume)."""
        if not self.enabled:
            return
        if self.jsonl.is_file():
            keep = [line for line in self.jsonl.read_text().splitlines()
                    if line.strip() and _step_of(line) is not None and _step_of(line) <= step]
            atomic_write_text(self.jsonl, "".join(line + "\n" for line in keep))
        if self.csv.is_file():
            with open(self.csv, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= step]
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
            atomic_write_text(self.csv, buf.getvalue())

    def step(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._jsonl({"kind": "step", **record})
        if self.tb is not None:
            for k in ("loss", "lr"):
                if k in record:
                    self.tb.add_scalar(f"train/{k}", record[k], record["step"])

    def epoch(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._jsonl({"kind": "epoch", **record})
        new = not self.csv.is_file()
        with open(self.csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: _fmt(record.get(k)) for k in self.fields})
        if self.tb is not None:
            for k in self.fields[2:]:
                if isinstance(record.get(k), int | float):
                    self.tb.add_scalar(f"epoch/{k}", record[k], record["epoch"])
            self.tb.flush()

    def _jsonl(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(clean) + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v
