"""Turn a finished ``litevision train`` run folder into the result JSON committed under ``docs/results/``.

Keeps ``results.json`` (metrics, per-class report), the per-epoch log, the resolved config (with the
output folder reset to the default) and the environment, next to the command that produced the run.

    python scripts/run_result.py runs/<run> docs/results/<name>.json --command "litevision train fashion_mnist"
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
from pathlib import Path

import torch
import yaml


def _number(text: str) -> int | float | None:
    if not text:
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else float(f"{value:.5g}")


def run_result(run_dir: Path, command: str, note: str = "") -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["run"].update(output="runs", name=None)
    with open(run_dir / "log.csv", newline="") as f:  # every task's columns: top-1, or mAP / AP50 (EMA too)
        epochs = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return {
        "command": command,
        "result": "test metrics of the last epoch's weights (the EMA's where the recipe keeps one; "
                  "no checkpoint selection)",
        "environment": {"torch": torch.__version__, "cpu": platform.machine(), "cores": os.cpu_count(),
                        "threads": config["run"]["threads"], "note": note},
        **{k: v for k, v in results.items() if k != "skipped_files"},
        "epochs_log": epochs,
        "config": config,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--command", required=True, help="the command that produced the run")
    p.add_argument("--note", default="", help="anything a reader should know about the machine")
    args = p.parse_args(argv)
    result = run_result(args.run_dir, args.command, args.note)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    headline = ", ".join(f"{k} {v:.4g}" for k, v in result.items() if k in ("test_top1", "test_map", "test_map50"))
    print(f"{args.output}: {headline} in {result['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
