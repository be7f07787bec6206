"""One timed run of the workload (a fresh process per configuration); prints one JSON line."""

from __future__ import annotations

import argparse
import json
import statistics
import time

from fedloom import RunConfig, run_simulation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", required=True)
    parser.add_argument("--ray-address", default="")
    parser.add_argument("--ray-num-cpus", type=int, default=0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cfg = RunConfig(dataset="digits", clients=args.clients, rounds=args.rounds, local_epochs=1, progress=False,
                    seed=1, backend=args.backend, ray_address=args.ray_address, ray_num_cpus=args.ray_num_cpus)
    t0 = time.perf_counter()
    result = run_simulation(cfg)
    run_s = time.perf_counter() - t0
    rounds = [r.metrics["wall_s"] for r in result.history]
    print(json.dumps({"run_s": run_s, "round1_s": rounds[0], "round_s": statistics.median(rounds[1:] or rounds),
                      "accuracy": result.final.get("accuracy"), "failures": sum(r.metrics["fit_failures"]
                                                                                for r in result.history)}))


if __name__ == "__main__":
    main()
