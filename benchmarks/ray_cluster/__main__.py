"""Time one federation in-process, on a private local Ray, and on a local Ray cluster of `ray start` nodes.

Workload: digits, ``--clients`` clients (all sampled), ``--rounds`` rounds, 1 local epoch, FedAvg, seed 1.
Configurations, each run in a fresh process:

- ``inline``: ``--backend inline`` (in-process, one client after another);
- ``ray (private)``: ``--backend ray``: a private Ray started by the run (``ray.init(num_cpus=N)``);
- ``ray cluster``: ``--backend ray --ray-address 127.0.0.1:PORT``: a head (``ray start --head``) and
  ``--workers`` worker nodes (``ray start --address``) on this machine, ``--cpus-per-node`` CPUs each,
  started before the run (their start-up time is reported apart); the command is the one a
  multi-machine cluster takes, with its head's address.

Writes ``benchmarks/ray_cluster/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fedloom.backends.ray_cluster import LocalRayCluster

HERE = Path(__file__).parent


def one(args: argparse.Namespace, backend: str, *, address: str = "", num_cpus: int = 0,
        env: dict[str, str] | None = None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.ray_cluster.one", "--backend", backend, "--clients", str(args.clients),
           "--rounds", str(args.rounds), "--ray-address", address, "--ray-num-cpus", str(num_cpus)]
    t0 = time.perf_counter()
    # one torch thread everywhere: what Ray gives each of its 1-CPU workers, and fair on a shared machine
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"{backend} failed: {out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["wall_s"] = wall
    print(backend, address, row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="worker nodes besides the head")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    cpus = (1 + args.workers) * args.cpus_per_node
    rows = {"inline": one(args, "inline"), "ray (private)": one(args, "ray", num_cpus=cpus)}
    t0 = time.perf_counter()
    with LocalRayCluster(workers=args.workers, cpus_per_node=args.cpus_per_node) as cluster:
        start_s = time.perf_counter() - t0
        rows["ray cluster"] = one(args, "ray", address=cluster.address, env=cluster.driver_env())
    rows["ray cluster"]["cluster_start_s"] = start_s
    load_after = os.getloadavg()[0]
    lines = [
        "# Ray: in-process vs a private Ray vs a local `ray start` cluster",
        "",
        f"`python -m benchmarks.ray_cluster` (digits, {args.clients} clients all sampled, {args.rounds} rounds, "
        "1 local epoch, FedAvg, seed 1; each configuration in a fresh process). The cluster is a head "
        f"(`ray start --head`) and {args.workers} worker node(s) (`ray start --address 127.0.0.1:PORT`) on this "
        f"machine, {args.cpus_per_node} CPU(s) and an 100 MB object store each "
        "(`fedloom.backends.ray_cluster.LocalRayCluster`); the private Ray gets the same "
        f"{cpus} CPUs; every process runs torch on one thread (`OMP_NUM_THREADS=1`, as Ray does for a 1-CPU "
        "worker). The run joins the cluster with `--ray-address 127.0.0.1:PORT`: the same command joins a "
        "multi-machine cluster with its head's address (docs/scaling.md).",
        "",
        f"Machine: {os.cpu_count()} cores shared with other jobs (load average {load_before:.1f} before, "
        f"{load_after:.1f} after); times are wall-clock seconds.",
        "",
        "| configuration | process wall | run (start-up + rounds) | round 1 | later rounds (median) | accuracy | "
        "failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['wall_s']:.1f} | {r['run_s']:.1f} | {r['round1_s']:.2f} | {r['round_s']:.2f} | "
                     f"{r['accuracy']:.4f} | {int(r['failures'])} |")
    lines += ["", f"Starting the cluster (head + {args.workers} worker node(s), until each said it was up) took "
              f"{rows['ray cluster']['cluster_start_s']:.1f} s, outside the times above.", ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
