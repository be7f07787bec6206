"""SCAFFOLD under client drift (Karimireddy et al., ICML 2020): against FedAvg and FedProx.

Many local steps on strongly non-IID splits, where FedAvg's clients drift toward their own optima:
Synthetic(1,1) (30 devices, each its own model and feature means; multinomial logistic regression)
and scikit-learn digits split by label, 2 classes per client (sorted shards; a one-hidden-layer MLP).
Everything is fedloom's pipeline (``RunConfig`` -> ``run_simulation``, inline backend: the
SCAFFOLD and FedProx trainers are not vectorizable). Reported: rounds to a target test accuracy
and the accuracy of the last 5 rounds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.papers.fedsgd import rounds_to

HERE = Path(__file__).resolve().parent
ROUNDS = 40
METHODS = {"FedAvg": {"strategy": "fedavg"}, "FedProx (mu=0.1)": {"strategy": "fedprox", "proximal_mu": 0.1},
           "SCAFFOLD": {"strategy": "scaffold"}}
SETUPS: dict[str, dict] = {
    "synthetic_1_1": {"dataset": "synthetic_1_1", "partition": "column", "group_column": "device", "clients": 30,
                      "fraction": 0.34, "model": "linear", "local_epochs": 2, "batch_size": 20, "lr": 0.05},
    "digits, 2 classes per client": {"dataset": "digits", "partition": "shards", "shards_per_client": 2,
                                     "clients": 20, "fraction": 0.5, "model": "mlp", "hidden": 64,
                                     "local_epochs": 10, "batch_size": 10, "lr": 0.05},
}
TARGETS = {"synthetic_1_1": 0.80, "digits, 2 classes per client": 0.85}


def run_one(setup: str, method: str, *, seed: int, rounds: int) -> dict:
    """One run; per-round central test accuracy."""
    import torch

    from fedloom.app.build import run_simulation
    from fedloom.app.config import RunConfig

    torch.set_num_threads(1)
    cfg = RunConfig(**SETUPS[setup], **METHODS[method], rounds=rounds, seed=seed, client_test_fraction=0.0)
    history = run_simulation(cfg).history
    return {"accuracy": [h.metrics.get("accuracy", 0.0) for h in history]}


def run(out: Path, *, rounds: int, seeds: Sequence[int]) -> dict:
    """Every (setup, method, seed) not yet in ``out``."""
    results: dict = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    results["protocol"] = {"rounds": rounds, "setups": SETUPS, "methods": METHODS, "targets": TARGETS}
    for seed in seeds:
        for setup in SETUPS:
            for method in METHODS:
                key = f"{setup}|{method}|{seed}"
                if key in results["runs"] and len(results["runs"][key]["accuracy"]) == rounds:
                    continue
                start = time.perf_counter()
                res = run_one(setup, method, seed=seed, rounds=rounds)
                res["wall_s"] = time.perf_counter() - start
                results["runs"][key] = res
                out.write_text(json.dumps(results))
                print(f"{key}: acc {res['accuracy'][-1]:.4f}, rounds to target "
                      f"{rounds_to(res['accuracy'], TARGETS[setup])} ({res['wall_s']:.0f} s)", flush=True)
    return results


def table(results: dict) -> str:
    """Rounds to target per seed and mean ± std of the last 5 rounds' accuracy."""
    lines = ["| setup (target) | method | seeds | rounds to target (per seed) | accuracy, last 5 rounds |",
             "| --- | --- | --- | --- | --- |"]
    for setup in SETUPS:
        for method in METHODS:
            sel = [r for k, r in results["runs"].items() if k.startswith(f"{setup}|{method}|")]
            if not sel:
                continue
            cap = len(sel[0]["accuracy"])
            hits = [rounds_to(r["accuracy"], TARGETS[setup]) for r in sel]
            final = np.array([np.mean(r["accuracy"][-5:]) for r in sel])
            per_seed = ", ".join(str(h) if h is not None else f">{cap}" for h in hits)
            lines.append(f"| {setup} ({TARGETS[setup]:.2f}) | {method} | {len(sel)} | {per_seed} "
                         f"| {final.mean():.3f} ± {final.std():.3f} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Test accuracy per round (mean over seeds), one panel per setup."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SETUPS), figsize=(11, 4))
    for ax, setup in zip(axes, SETUPS, strict=True):
        for method in METHODS:
            sel = [r["accuracy"] for k, r in results["runs"].items() if k.startswith(f"{setup}|{method}|")]
            if sel:
                acc = np.mean(sel, axis=0)
                ax.plot(np.arange(1, len(acc) + 1), acc, label=method)
        ax.axhline(TARGETS[setup], color="grey", lw=0.8, ls="--")
        ax.set_title(setup)
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
