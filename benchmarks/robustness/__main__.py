"""Robust aggregation under attack: final accuracy of FedAvg vs each robust aggregator.

Digits (or MNIST-5k with ``--dataset mnist``), 20 clients (IID split), all clients every round,
20% attackers of each kind (``sign_flip``, ``gaussian``, ``label_flip``, ``alie``) plus the clean
run, for the aggregators mean (FedAvg), median, trimmed_mean, krum, multikrum, bulyan and mean with
norm bounding. Everything goes through :func:`fedloom.run_simulation` with a
:class:`fedloom.RunConfig`, i.e. exactly what ``fedloom run --attack ... --aggregator ...`` runs.

Usage::

    python -m benchmarks.robustness --rounds 20 --seeds 0 1
    python -m benchmarks.robustness --report-only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fedloom import RunConfig, run_simulation

HERE = Path(__file__).resolve().parent
ATTACKS = ["none", "sign_flip", "gaussian", "label_flip", "alie"]
AGGREGATORS = {
    "mean (FedAvg)": {"aggregator": "mean"},
    "median": {"aggregator": "median"},
    "trimmed_mean (beta=0.2)": {"aggregator": "trimmed_mean", "trim_beta": 0.2},
    "krum (f=4)": {"aggregator": "krum"},
    "multikrum (f=4, m=n-f)": {"aggregator": "multikrum"},
    "bulyan (f=4)": {"aggregator": "bulyan"},
    "mean + norm bound": {"aggregator": "mean", "clip_update_norm": 1.0},
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    ap.add_argument("--model", default="linear", help="fedloom model name (linear, mlp, cnn)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--attackers", type=float, default=0.2)
    ap.add_argument("--attack-scale", type=float, default=4.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared CPU

    results: dict = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    if not args.report_only:
        f = int(round(args.attackers * args.clients))
        results["protocol"] = {"dataset": args.dataset, "model": args.model, "rounds": args.rounds,
                               "clients": args.clients, "attackers": args.attackers, "byzantine_f": f,
                               "attack_scale": args.attack_scale, "seeds": args.seeds}
        for seed in args.seeds:
            for attack in ATTACKS:
                for label, agg in AGGREGATORS.items():
                    key = f"{attack}|{label}|{seed}"
                    if key in results["runs"]:
                        continue
                    cfg = RunConfig(dataset=args.dataset, model=args.model, clients=args.clients, rounds=args.rounds,
                                    partition="iid", lr=0.1, local_epochs=1, batch_size=16,
                                    client_test_fraction=0.0, byzantine_f=f, seed=seed, progress=False,
                                    attack=attack, attackers=args.attackers if attack != "none" else 0.0,
                                    attack_scale=args.attack_scale, eval_every=args.rounds, **agg)
                    start = time.process_time()
                    res = run_simulation(cfg)
                    results["runs"][key] = {"accuracy": res.final["accuracy"], "cpu_s": time.process_time() - start}
                    args.out.write_text(json.dumps(results, indent=1))
                    print(f"{key}: {res.final['accuracy']:.4f}", flush=True)
    report(results)


def report(results: dict) -> None:
    """Write table.md: rows aggregators, columns attacks, mean ± std accuracy over seeds."""
    runs = results["runs"]
    lines = ["| aggregator | " + " | ".join(ATTACKS) + " |", "| --- |" + " --- |" * len(ATTACKS)]
    for label in AGGREGATORS:
        cells = []
        for attack in ATTACKS:
            accs = np.array([r["accuracy"] for k, r in runs.items() if k.startswith(f"{attack}|{label}|")])
            cells.append(f"{accs.mean():.3f} ± {accs.std():.3f}" if len(accs) else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print((HERE / "table.md").read_text())


if __name__ == "__main__":
    main()
