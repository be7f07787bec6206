"""Workload W run by fedloom, for the benchmark driver: ``python -m benchmarks.simulation.fedloom_run``.

Prints one JSON line with the same fields as :mod:`benchmarks.simulation.plain`. ``--cli`` runs the
``fedloom run`` command instead (run directory, SQLite metrics, plots and HTML report included).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

_T0 = time.perf_counter()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="inline")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ray-num-cpus", type=int, default=2)
    ap.add_argument("--cli", action="store_true", help="run through the `fedloom run` command")
    args = ap.parse_args(argv)
    # workload W's training settings spelled out (not left to RunConfig defaults, which may change)
    fields = dict(dataset=args.dataset, partition="iid", client_test_fraction=0.0, clients=args.clients,
                  model="mlp", hidden=128, local_epochs=1, batch_size=16, lr=0.05, optimizer="sgd",
                  rounds=args.rounds, fraction=args.fraction, backend=args.backend, seed=args.seed,
                  progress=False, ray_num_cpus=args.ray_num_cpus)
    if args.cli:
        from fedloom.cli import main as cli_main

        out = tempfile.mkdtemp(prefix="fedloom-bench-")
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in fields.items() if k != "progress"]
        cli_main(["run", *flags, "--no-progress", "--out", out])
        summary = json.loads(Path(out, "summary.json").read_text())
        history, final = summary["history"], summary["final"]
        round_s = [h["wall_s"] for h in history]
    else:
        from fedloom import RunConfig, run_simulation

        result = run_simulation(RunConfig(**fields))  # type: ignore[arg-type]
        round_s = [h.metrics["wall_s"] for h in result.history]
        final = result.final
    return {
        "impl": args.backend + (" (fedloom run CLI)" if args.cli else ""),
        "clients": args.clients,
        "round_s": round_s,
        "loop_s": sum(round_s),
        "total_s": time.perf_counter() - _T0,
        "accuracy": final.get("accuracy", float("nan")),
        "loss": final.get("loss", float("nan")),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    result = main(sys.argv[1:])
    sys.stdout.flush()
    print("\n" + json.dumps(result))
