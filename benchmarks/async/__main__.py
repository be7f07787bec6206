"""Synchronous FedAvg vs FedBuff vs FedAsync on a heterogeneous fleet, on one virtual time axis.

Setting (issue 14): digits (MLP, Dirichlet(0.5) over 30 clients) and LEAF Synthetic(1,1) (logistic
regression, its 30 natural devices); device slowness log-normal with sigma 1 and 2; every client
off 20% of the time (``onoff``, 50 s periods, own phase); 0.01 virtual s per example and epoch for
the median device. Budgets:

* sync FedAvg: 30 rounds of 10 clients, 300 client updates (each round waits for its slowest client);
* FedBuff: concurrency 10, buffer 5, 180 server updates (900 client updates), staleness ``poly:0.5``;
* FedAsync: concurrency 10, alpha 0.5, 900 server updates (900 client updates), staleness ``poly:0.5``.

The asynchronous methods get three times the client updates because a first run at equal budgets
(300) left them short of the Synthetic(1,1) target while using a fifteenth of the virtual time; the
table reports the client updates each method actually needed to reach the target.

Measured per run: virtual time and client updates until the central test accuracy first reaches the
target, final accuracy, total virtual time; 3 seeds. Everything is fedloom's own
(``run_simulation`` with ``--mode``, ``--device-speed``, ``--availability``).

Usage::

    python -m benchmarks.async                 # ~10 min on 2 busy cores
    python -m benchmarks.async --report-only   # table + plot from results.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"dataset": "digits", "partition": "dirichlet", "alpha": 0.5, "model": "mlp", "hidden": 64,
               "lr": 0.05, "target": 0.85},
    "synthetic_1_1": {"dataset": "synthetic_1_1", "partition": "column", "model": "logistic", "lr": 0.01,
                      "target": 0.60},
}
SIGMAS = (1.0, 2.0)
ROUNDS = 30
COHORT = 10
ASYNC_BUDGET = 3  # the asynchronous methods may use 3x the synchronous client updates (see RESULTS.md)
METHODS: dict[str, dict[str, Any]] = {
    "sync FedAvg": {"rounds": ROUNDS},
    "FedBuff": {"mode": "async", "buffer_size": 5, "concurrency": COHORT,
                "rounds": ASYNC_BUDGET * ROUNDS * COHORT // 5, "eval_every": 4, "staleness": "poly:0.5"},
    "FedAsync": {"mode": "async", "async_aggregation": "fedasync", "concurrency": COHORT, "async_alpha": 0.5,
                 "rounds": ASYNC_BUDGET * ROUNDS * COHORT, "eval_every": 20, "staleness": "poly:0.5"},
}


def run_one(data: str, sigma: float, method: str, seed: int) -> dict[str, Any]:
    from fedloom.app.build import run_simulation
    from fedloom.app.config import RunConfig

    spec = {k: v for k, v in DATASETS[data].items() if k != "target"}
    cfg = RunConfig(**spec, clients=30, fraction=COHORT / 30, local_epochs=1, batch_size=10, seed=seed,
                    progress=False, device_speed=f"lognormal:{sigma}", availability="onoff", unavailable=0.2,
                    availability_period_s=50.0, seconds_per_example=0.01, write_ledger=False, **METHODS[method])
    start = time.perf_counter()
    result = run_simulation(cfg)
    updates = 0.0
    curve = []
    for h in result.history:
        m = h.metrics
        updates = m.get("client_updates", updates + m.get("fit_clients", 0.0))
        if "accuracy" in m:
            curve.append((m["virtual_time_s"], updates, m["accuracy"]))
    return {"data": data, "sigma": sigma, "method": method, "seed": seed, "curve": curve,
            "wall_s": time.perf_counter() - start}


def _reach(curve: list[list[float]], target: float) -> tuple[float, float]:
    for t, n, acc in curve:
        if acc >= target:
            return t, n
    return float("nan"), float("nan")


def _fmt(values: list[float], digits: int = 0) -> str:
    arr = np.array(values, dtype=float)
    done = arr[np.isfinite(arr)]
    if done.size == 0:
        return "not reached"
    text = f"{done.mean():.{digits}f} ± {done.std():.{digits}f}"
    return text if done.size == arr.size else f"{text} ({done.size}/{arr.size} seeds)"


def report(runs: list[dict[str, Any]]) -> None:
    lines = ["| data | sigma | method | virtual s to target | client updates to target | final accuracy | "
             "total virtual s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for data, spec in DATASETS.items():
        for sigma in SIGMAS:
            for method in METHODS:
                rs = [r for r in runs if r["data"] == data and r["sigma"] == sigma and r["method"] == method]
                if not rs:
                    continue
                reach = [_reach(r["curve"], spec["target"]) for r in rs]
                lines.append(f"| {data} (target {spec['target']:.2f}) | {sigma:g} | {method} | "
                             f"{_fmt([a for a, _ in reach])} | {_fmt([b for _, b in reach])} | "
                             f"{_fmt([r['curve'][-1][2] for r in rs], 3)} | {_fmt([r['curve'][-1][0] for r in rs])} |")
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(runs)


def _plot(runs: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(DATASETS), len(SIGMAS), figsize=(11, 7.5), squeeze=False)
    colors = {"sync FedAvg": "tab:blue", "FedBuff": "tab:orange", "FedAsync": "tab:green"}
    for i, data in enumerate(DATASETS):
        for j, sigma in enumerate(SIGMAS):
            ax = axes[i][j]
            for method, color in colors.items():
                for k, r in enumerate(r for r in runs if r["data"] == data and r["sigma"] == sigma
                                      and r["method"] == method):
                    t = [c[0] for c in r["curve"]]
                    acc = [c[2] for c in r["curve"]]
                    ax.plot(t, acc, color=color, alpha=0.8, lw=1.2, label=method if k == 0 else None)
            ax.axhline(DATASETS[data]["target"], color="grey", ls=":", lw=1)
            ax.set_xscale("log")
            ax.set_title(f"{data}, device slowness lognormal sigma={sigma:g}, 20% off")
            ax.set_xlabel("virtual time (s)")
            ax.set_ylabel("test accuracy")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Accuracy vs virtual time (sync: 300 client updates; async: up to 900), 3 seeds each")
    fig.tight_layout()
    fig.savefig(HERE / "accuracy_vs_virtual_time.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    results = HERE / "results.json"
    if args.report_only:
        report(json.loads(results.read_text()))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)  # tiny models: more threads only contend with each other
    runs = []
    start = time.perf_counter()
    for data in DATASETS:
        for sigma in SIGMAS:
            for method in METHODS:
                for seed in args.seeds:
                    r = run_one(data, sigma, method, seed)
                    runs.append(r)
                    print(f"{data} sigma={sigma:g} {method} seed={seed}: acc {r['curve'][-1][2]:.3f} at "
                          f"{r['curve'][-1][0]:.0f} virtual s ({r['wall_s']:.1f} s)", flush=True)
                    results.write_text(json.dumps(runs))
    print(f"total {time.perf_counter() - start:.0f} s")
    report(runs)


if __name__ == "__main__":
    main()
