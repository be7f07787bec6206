"""What the signed round ledger costs (issue 16).

    python -m benchmarks.ledger          # about 3 minutes on 2 cores

(a) The whole ``fedloom run`` process (imports included) with ``--ledger`` (the default) against
    ``--no-ledger``, interleaved and repeated; the minimum CPU time (user + system, which a shared
    machine disturbs far less than wall time) of each is reported, with its wall time and the
    ledger's bytes per round.
(b) The hashing the server does per received update (SHA-256 over names, dtypes, shapes and the
    float32 bytes), for models of 10k, 1M and 25M parameters; best of 5.
(c) One contribution-score round (``--contributions``) against none, in the same process run as (a).

Results go to ``benchmarks/ledger/results.json`` and ``RESULTS.md``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
RUN = ["--dataset", "digits", "--clients", "20", "--fraction", "0.5", "--rounds", "10", "--seed", "0",
       "--no-progress"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(extra: list[str]) -> tuple[float, int, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        start, cpu = time.perf_counter(), _cpu()
        subprocess.run([sys.executable, "-m", "fedloom.cli", "run", *RUN, *extra, "--out", str(out)],
                       check=True, capture_output=True)
        seconds, cpu_seconds = time.perf_counter() - start, _cpu() - cpu
        ledger = out / "ledger.jsonl"
        size = ledger.stat().st_size if ledger.exists() else 0
        lines = len(ledger.read_text().splitlines()) if ledger.exists() else 0
        return cpu_seconds, size, lines, seconds


def whole_process(repeats: int = 3) -> list[dict]:
    variants = {"no ledger": ["--no-ledger"], "ledger (default)": [], "ledger + contributions": ["--contributions"]}
    best: dict[str, tuple[float, int, int, float]] = {}
    for _ in range(repeats):
        for name, extra in variants.items():
            got = _run(extra)
            if name not in best or got[0] < best[name][0]:
                best[name] = got
            print(f"  {name:24s} CPU {got[0]:6.2f} s  wall {got[3]:6.2f} s  ledger {got[1]} bytes / {got[2]} entries",
                  flush=True)
    base = best["no ledger"][0]
    return [{"variant": name, "cpu_seconds": c, "ratio": c / base, "wall_seconds": w, "ledger_bytes": b,
             "entries": n, "bytes_per_round": b / n if n else 0} for name, (c, b, n, w) in best.items()]


def hashing(repeats: int = 5) -> list[dict]:
    from fedloom.core.parameters import Parameters
    from fedloom.ledger.hashing import parameters_digest

    rows = []
    for size in (10_000, 1_000_000, 25_000_000):
        params = Parameters({"w": np.random.default_rng(0).standard_normal(size, dtype=np.float32)})
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            parameters_digest(params)
            times.append(time.perf_counter() - start)
        best = min(times)
        rows.append({"parameters": size, "megabytes": size * 4 / 1e6, "seconds": best,
                     "gb_per_s": size * 4 / best / 1e9})
        print(f"  {size:>11,d} parameters: {best * 1e3:8.2f} ms ({size * 4 / best / 1e9:.2f} GB/s)", flush=True)
    return rows


def main() -> None:
    results = {"whole_process": whole_process(), "hashing": hashing()}
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
