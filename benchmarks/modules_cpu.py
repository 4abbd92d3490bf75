"""CPU latency of every plug-in module at 8x64x56x56 (eval, inference mode, fixed threads).

Each module is timed right after a dense 3x3 convolution of the same width on the same input; the JSON
stores the median milliseconds of both and their ratio, which stays meaningful on a shared, noisy machine.
``litevision modules`` reads the result.

    python benchmarks/modules_cpu.py                      # all modules -> benchmarks/results/modules_cpu.json
    python benchmarks/modules_cpu.py --modules eca simam --threads 2 --output /tmp/m.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from litevision.bench.module_table import DEFAULT_LATENCY_JSON, benchmark_modules


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", nargs="*", help="module names (default: all registered)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--output", default=str(DEFAULT_LATENCY_JSON))
    args = p.parse_args(argv)
    result = benchmark_modules(args.modules, threads=args.threads, iters=args.iters, warmup=args.warmup,
                               progress=lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(args.output)
    if args.modules and out.is_file():  # a partial run updates the existing table
        previous = json.loads(out.read_text())
        result["modules"] = {**previous.get("modules", {}), **result["modules"]}
        updates = previous.get("meta", {}).get("partial_updates", [])
        result["meta"] = {**previous.get("meta", result["meta"]),
                          "partial_updates": [*updates, {"date": result["meta"]["date"], "modules": args.modules}]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} ({len(result['modules'])} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
