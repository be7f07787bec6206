"""Benchmark driver: workload W for every backend and N against the plain PyTorch program.

``python -m benchmarks.simulation`` (or ``make bench``) runs, for N = 10, 100, 1000 clients on
digits and for N = 100 and 10,000 (1% sampled per round) on synthetic data, the plain program and
fedloom with each backend. Every run is a fresh subprocess; the runs of one configuration are
interleaved (plain, inline, vectorized, ray, plain, ...) and repeated, and the table reports the
minimum over repetitions, because other processes share the CPU. Peak RSS is the largest resident
memory of the run's whole process tree (Ray's workers included), sampled every 50 ms, or the
process's own ``ru_maxrss`` if larger. Writes ``benchmarks/simulation/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import psutil

from benchmarks.simulation.data import make_synthetic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total


def run_one(module: str, args: list[str], threads: int, timeout: float) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process; its JSON result plus wall time and peak RSS."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), RAY_DEDUP_LOGS="0")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT)
        ps, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss(ps))
            if time.perf_counter() - start > timeout:
                proc.kill()
                break
            time.sleep(0.05)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    lines = [line for line in text.strip().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": text[-2000:], "wall_s": wall}
    result = json.loads(lines[-1])
    result["wall_s"] = wall
    result["peak_rss_mb"] = max(result.get("peak_rss_mb", 0.0), peak / 2**20)
    return result


def configurations(quick: bool, synthetic: Path) -> list[dict[str, Any]]:
    sizes = [10, 100] if quick else [10, 100, 1000]
    configs = [{"name": f"digits N={n}", "clients": n, "fraction": 1.0, "dataset": "digits"} for n in sizes]
    if not quick:
        configs += [
            {"name": "synthetic N=100", "clients": 100, "fraction": 1.0, "dataset": str(synthetic)},
            {"name": "synthetic N=10,000 (1%/round)", "clients": 10_000, "fraction": 0.01, "dataset": str(synthetic)},
        ]
    return configs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each run (min is reported)")
    ap.add_argument("--ray-reps", type=int, default=1, help="repetitions of Ray runs (slow to start)")
    ap.add_argument("--backends", default="inline,vectorized,ray")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of every run (plain and fedloom)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="N = 10 and 100 on digits only")
    ap.add_argument("--cli", action="store_true", help="also time `fedloom run` (inline, digits N=100)")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--json", default=str(HERE / "results.json"))
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    synthetic = make_synthetic(Path(tempfile.gettempdir()) / "fedloom-bench" / "synthetic-50k.npz")
    try:
        import flwr  # noqa: F401

        flower = "flwr is installed, but the Flower runner is not written yet: Flower comparison skipped."
    except ImportError:
        flower = "flwr is not installed: the optional Flower comparison was skipped."
    print(flower, file=sys.stderr)

    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    for config in configurations(args.quick, synthetic):
        common = ["--clients", str(config["clients"]), "--fraction", str(config["fraction"]),
                  "--dataset", config["dataset"], "--rounds", str(args.rounds)]
        runs: dict[str, list[dict[str, Any]]] = {}
        impls = [("plain", "benchmarks.simulation.plain", [])]
        impls += [(b, "benchmarks.simulation.fedloom_run", ["--backend", b]) for b in backends]
        if args.cli and config["name"] == "digits N=100":
            impls.append(("inline (fedloom run CLI)", "benchmarks.simulation.fedloom_run", ["--cli"]))
        for rep in range(args.reps):
            for name, module, extra in impls:
                if name == "ray" and rep >= args.ray_reps:
                    continue
                result = run_one(module, common + extra, args.threads, args.timeout)
                print(f"{config['name']:32s} {name:26s} rep {rep}: "
                      + (f"wall {result['wall_s']:.2f}s round {median(result['round_s']) * 1e3:.1f}ms "
                         f"acc {result['accuracy']:.4f} rss {result['peak_rss_mb']:.0f}MB"
                         if "error" not in result else "ERROR " + result["error"][-300:]),
                      file=sys.stderr, flush=True)
                runs.setdefault(name, []).append(result)
        rows.extend(_summarize(config, runs))
    load_after = os.getloadavg()
    Path(args.json).write_text(json.dumps(rows, indent=1))
    Path(args.out).write_text(_markdown(rows, args, load_before, load_after, flower))
    print(f"wrote {args.out}", file=sys.stderr)


def _summarize(config: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    def best(results: list[dict[str, Any]]) -> dict[str, Any] | None:
        ok = [r for r in results if "error" not in r]
        if not ok:
            return None
        return {
            "wall_s": min(r["wall_s"] for r in ok),
            "round_ms": min(median(r["round_s"]) for r in ok) * 1e3,
            "first_round_s": min(r["round_s"][0] for r in ok),
            "loop_s": min(r["loop_s"] for r in ok),
            "peak_rss_mb": min(r["peak_rss_mb"] for r in ok),
            "accuracy": ok[0]["accuracy"],
            "reps": len(ok),
        }

    plain = best(runs.get("plain", []))
    rows = []
    for name, results in runs.items():
        stats = best(results)
        row: dict[str, Any] = {"config": config["name"], "impl": name, **(stats or {"error": results[-1]["error"]})}
        if stats and plain:
            row["wall_ratio"] = stats["wall_s"] / plain["wall_s"]
            row["round_ratio"] = stats["round_ms"] / plain["round_ms"]
            row["loop_ratio"] = stats["loop_s"] / plain["loop_s"]
        rows.append(row)
    return rows


def _markdown(rows: list[dict[str, Any]], args: argparse.Namespace, before: tuple, after: tuple, flower: str) -> str:
    import torch

    lines = [
        "# Simulation benchmark: workload W",
        "",
        "Workload W: digits standardized, 20% held out, IID split over N clients, MLP 64-128-10 (ReLU),",
        "1 local epoch, batch 16, SGD lr 0.05, example-weighted FedAvg, central evaluation every round,",
        f"{args.rounds} rounds. `plain` is the same work as a plain PyTorch program without fedloom",
        "(`benchmarks/simulation/plain.py`); it reaches the same final accuracy, which checks that the work",
        "is the same. The synthetic rows use 50,000 Gaussian-cluster examples in 64 dimensions, so that",
        "10,000 clients exist; N=10,000 samples 1% (100 clients) per round, like synthetic N=100 trains 100.",
        "",
        f"Machine: {platform.machine()}, {psutil.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {args.threads} torch thread(s) in every run. The machine is shared with",
        f"other busy processes (load average {before[0]:.1f} before, {after[0]:.1f} after), so each run is a",
        f"fresh process, runs of a configuration are interleaved, and the table shows the minimum over "
        f"{args.reps} repetitions",
        f"(Ray: {args.ray_reps}).",
        "",
        "Columns: *wall* is the whole process (interpreter start, imports, data, 20 rounds); *round* the",
        "median time of one round (train + aggregate + evaluate); *round 1* the first round; *loop* all rounds;",
        "*ratio* divides by `plain` in the same configuration (wall / round / loop).",
        "",
        "| configuration | backend | wall (s) | round (ms) | round 1 (s) | loop (s) | peak RSS (MB) | accuracy "
        "| wall ratio | round ratio | loop ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['impl']} | failed | | | | | | | | |")
            continue
        ratios = " | ".join(f"{r[k]:.2f}x" if k in r else "" for k in ("wall_ratio", "round_ratio", "loop_ratio"))
        lines.append(
            f"| {r['config']} | {r['impl']} | {r['wall_s']:.2f} | {r['round_ms']:.1f} | {r['first_round_s']:.2f} "
            f"| {r['loop_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['accuracy']:.4f} | {ratios} |"
        )
    lines += ["", flower, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
