"""Run the communication benchmark and write results.json, accuracy_vs_mb.png and markdown tables."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.communication import compression, he

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.communication")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    parser.add_argument("--skip-he", action="store_true")
    parser.add_argument("--skip-compression", action="store_true")
    parser.add_argument("--out", default=str(HERE), help="where results.json and the plot go")
    parser.add_argument("--codecs", default="", help="comma-separated subset of the codec rows to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick, "torch": torch.__version__}
    if not args.skip_compression:
        print("compression: digits, 100 clients", flush=True)
        rows = compression.run(quick=args.quick, only=[c for c in args.codecs.split(",") if c] or None)
        results["compression"] = rows
        compression.plot(rows, str(out / "accuracy_vs_mb.png"))
        print(compression.table(rows))
    if not args.skip_he:
        print("HE vs plaintext aggregation: 10 clients x 100k parameters", flush=True)
        rows = he.run(quick=args.quick)
        results["he"] = rows
        print(he.table(rows))
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {out / 'results.json'}")
