"""Start-up benchmark: how long ``fedloom --help`` (and friends) take against ``python -c pass``.

``python -m benchmarks.startup [--reps 15]`` runs each command in a fresh process, interleaved
(pass, help, run-help, import, pass, ...), and reports the minimum and median wall time of each and
its difference from the bare interpreter, in one run. Writes ``benchmarks/startup/RESULTS.md`` and
``results.json``. The goal of issue 12: ``fedloom --help`` at most 0.6 s over ``python -c pass``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def commands() -> dict[str, list[str]]:
    exe = shutil.which("fedloom") or str(Path(sys.executable).parent / "fedloom")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "fedloom --help": [exe, "--help"],
        "fedloom run --help": [exe, "run", "--help"],
        "python -c 'import fedloom'": [sys.executable, "-c", "import fedloom"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "python -c 'import fedloom.cli'": [sys.executable, "-c", "import fedloom.cli"],
    }


def time_once(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args(argv)
    cmds = commands()
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for cmd in cmds.values():  # warm the file cache once
        time_once(cmd)
    load_before = os.getloadavg()[0]
    for _ in range(args.reps):
        for name, cmd in cmds.items():
            times[name].append(time_once(cmd))
    load_after = os.getloadavg()[0]
    base_min, base_med = min(times["python -c pass"]), median(times["python -c pass"])
    rows = []
    for name, ts in times.items():
        rows.append({"command": name, "min_s": min(ts), "median_s": median(ts),
                     "over_python_min_s": min(ts) - base_min, "over_python_median_s": median(ts) - base_med})
    (HERE / "results.json").write_text(json.dumps({"reps": args.reps, "rows": rows}, indent=1))
    lines = [
        "# Start-up benchmark: the `fedloom` command against a bare interpreter",
        "",
        f"`python -m benchmarks.startup --reps {args.reps}`: every command in a fresh process, interleaved, "
        f"{args.reps} repetitions after one warm-up each. Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {load_before:.1f} before, {load_after:.1f} after.",
        "",
        "| command | min (s) | median (s) | over `python -c pass`, min (s) | over, median (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| `{r['command']}` | {r['min_s']:.3f} | {r['median_s']:.3f} | {r['over_python_min_s']:+.3f} | "
                     f"{r['over_python_median_s']:+.3f} |")
    help_over = next(r for r in rows if r["command"] == "fedloom --help")["over_python_median_s"]
    lines += ["", f"Goal (issue 12): `fedloom --help` at most 0.6 s over `python -c pass`; measured "
              f"{help_over:+.3f} s (median). Before issue 12 it took about 2.9 s (all of torch, dp-accounting, "
              "grpc, opacus and matplotlib were imported to print the help).", ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
