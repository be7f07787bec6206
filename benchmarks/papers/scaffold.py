"""SCAFFOLD under client drift (Karimireddy et al., ICML 2020): against FedAvg and FedProx.

Many local steps on strongly non-IID splits, where FedAvg's clients drift toward their own optima:
Synthetic(1,1) (30 devices, each its own model and feature means; multinomial logistic regression)
and scikit-learn digits split by label, 2 classes per client (sorted shards; a one-hidden-layer MLP).
Everything is fedloom's pipeline (``RunConfig`` -> ``run_simulation``, inline backend: the
SCAFFOLD and FedProx trainers are not vectorizable). Reported: rounds to a target test accuracy
and the accuracy of the last 5 rounds.

The client learning rate is tuned per method and setup: seed 0 runs every rate of ``LRS``, and the
rate with the lowest training loss of the global model (on the union of the clients' training rows,
mean of the last 5 rounds) is the method's; the test accuracy plays no part in the choice. The other
seeds run that rate, and also the untuned ``FIXED_LR`` of the first version of this benchmark.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.papers.fedsgd import rounds_to

HERE = Path(__file__).resolve().parent
ROUNDS = 40
LRS = [0.005, 0.01, 0.02, 0.05]
"""The client learning rates of the sweep (seed ``SWEEP_SEED``)."""
SWEEP_ORDER = [0.005, 0.05, 0.01, 0.02]
"""The order the sweep runs them in, every method at one rate before the next rate (so that a sweep cut short
has covered the same rates for every method, the untuned ``FIXED_LR`` among the first)."""
SWEEP_SEED = 0
FIXED_LR = 0.05
"""The rate every method used before tuning (kept as a second table)."""
METHODS = {"FedAvg": {"strategy": "fedavg"}, "FedProx (mu=0.1)": {"strategy": "fedprox", "proximal_mu": 0.1},
           "SCAFFOLD": {"strategy": "scaffold"}}
SETUPS: dict[str, dict] = {
    "synthetic_1_1": {"dataset": "synthetic_1_1", "partition": "column", "group_column": "device", "clients": 30,
                      "fraction": 0.34, "model": "linear", "local_epochs": 2, "batch_size": 20},
    "digits, 2 classes per client": {"dataset": "digits", "partition": "shards", "shards_per_client": 2,
                                     "clients": 20, "fraction": 0.5, "model": "mlp", "hidden": 64,
                                     "local_epochs": 10, "batch_size": 10},
}
TARGETS = {"synthetic_1_1": 0.80, "digits, 2 classes per client": 0.85}


class GlobalTrainLoss:
    """A round observer recording the global model's loss and accuracy on the union of the clients' training rows."""

    def __init__(self, cfg: Any) -> None:
        import torch

        from fedloom.app.build import build_simulation
        from fedloom.torch.client import make_evaluate_fn

        sim = build_simulation(cfg)
        rows = np.concatenate([s.train for s in sim.splits])
        x, y = torch.from_numpy(sim.dataset.x_train[rows]), torch.from_numpy(sim.dataset.y_train[rows])
        self._evaluate = make_evaluate_fn(sim.model, (x, y), task=sim.dataset.task)
        self.loss: list[float] = []
        self.accuracy: list[float] = []

    def on_round_end(self, record: Any, state: Any) -> None:
        res = self._evaluate(state.parameters)
        self.loss.append(float(res.loss))
        self.accuracy.append(float(res.metrics.get("accuracy", float("nan"))))


def run_one(setup: str, method: str, lr: float, *, seed: int, rounds: int) -> dict:
    """One run; per-round central test accuracy and the global model's training loss and accuracy."""
    import torch

    from fedloom.app.build import run_simulation
    from fedloom.app.config import RunConfig

    torch.set_num_threads(1)
    cfg = RunConfig(**SETUPS[setup], **METHODS[method], lr=lr, rounds=rounds, seed=seed, client_test_fraction=0.0)
    train = GlobalTrainLoss(cfg)
    history = run_simulation(cfg, observers=[train]).history
    return {"accuracy": [h.metrics.get("accuracy", 0.0) for h in history], "train_loss": train.loss,
            "train_accuracy": train.accuracy}


def _key(setup: str, method: str, lr: float, seed: int) -> str:
    return f"{setup}|{method}|{lr:g}|{seed}"


def _select(runs: dict, setup: str, method: str, lr: float) -> list[dict]:
    return [r for k, r in sorted(runs.items()) if k.startswith(f"{setup}|{method}|{lr:g}|")]


def final_train_loss(run: dict) -> float:
    """Mean training loss of the global model over the last 5 rounds (``inf`` if it diverged)."""
    value = float(np.mean(run["train_loss"][-5:]))
    return value if np.isfinite(value) else float("inf")


def swept(runs: dict, setup: str, method: str) -> list[float]:
    """The rates of ``LRS`` the sweep (seed ``SWEEP_SEED``) has run for this setup and method."""
    return [lr for lr in LRS if _key(setup, method, lr, SWEEP_SEED) in runs]


def best_lr(runs: dict, setup: str, method: str, *, complete: bool = True) -> float | None:
    """The swept rate with the lowest final training loss (seed ``SWEEP_SEED``). ``None`` before the sweep has run
    every rate (``complete``) or, with ``complete=False``, any rate."""
    done = swept(runs, setup, method)
    if not done or (complete and len(done) < len(LRS)):
        return None
    return min(done, key=lambda lr: final_train_loss(runs[_key(setup, method, lr, SWEEP_SEED)]))


def run(out: Path, *, rounds: int, seeds: Sequence[int], setups: Sequence[str] | None = None,
        lrs: Sequence[float] | None = None, methods: Sequence[str] | None = None) -> dict:
    """The sweep (seed ``SWEEP_SEED``, every rate, or those of ``lrs`` in that order: to split the sweep over
    processes; ``methods``: only these), then each method's best rate and ``FIXED_LR`` for the other seeds;
    every run not yet in ``out`` (rewritten after each run, so a killed run resumes)."""
    results: dict = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    results["protocol"] = {"rounds": rounds, "setups": SETUPS, "methods": METHODS, "targets": TARGETS, "lrs": LRS,
                           "fixed_lr": FIXED_LR, "sweep_seed": SWEEP_SEED}
    runs = results["runs"]
    chosen = list(setups or SETUPS)
    plan = [(s, m, lr, SWEEP_SEED) for lr in (lrs or SWEEP_ORDER) for s in chosen for m in METHODS]
    for seed in [s for s in seeds if s != SWEEP_SEED]:
        plan += [(s, m, None, seed) for s in chosen for m in METHODS]  # None: the best rate, known after the sweep
    for seed in [s for s in seeds if s != SWEEP_SEED]:
        plan += [(s, m, FIXED_LR, seed) for s in chosen for m in METHODS]
    for setup, method, lr, seed in plan:
        if methods and method not in methods:
            continue
        lr = lr if lr is not None else best_lr(runs, setup, method)
        if lr is None or _key(setup, method, lr, seed) in runs:
            continue
        start = time.perf_counter()
        res = run_one(setup, method, lr, seed=seed, rounds=rounds)
        res["wall_s"] = time.perf_counter() - start
        runs[_key(setup, method, lr, seed)] = res
        out.write_text(json.dumps(results))
        print(f"{_key(setup, method, lr, seed)}: acc {res['accuracy'][-1]:.4f}, train loss "
              f"{final_train_loss(res):.4f}, rounds to target {rounds_to(res['accuracy'], TARGETS[setup])} "
              f"({res['wall_s']:.0f} s)", flush=True)
    return results


def _rows(runs: dict, setup: str, method: str, lr: float, label: str) -> str | None:
    sel = _select(runs, setup, method, lr)
    if not sel:
        return None
    cap = len(sel[0]["accuracy"])
    hits = [rounds_to(r["accuracy"], TARGETS[setup]) for r in sel]
    reached = [h for h in hits if h is not None]
    per_seed = ", ".join(str(h) if h is not None else f">{cap}" for h in hits)
    spread = (f"{np.mean(reached):.1f} ± {np.std(reached):.1f}" if len(reached) == len(hits) > 1 else
              (per_seed if len(hits) == 1 else f"{len(reached)} of {len(hits)} seeds reach it"))
    final = np.array([np.mean(r["accuracy"][-5:]) for r in sel])
    loss = np.array([final_train_loss(r) for r in sel])
    return (f"| {setup} ({TARGETS[setup]:.2f}) | {method} | {label} | {len(sel)} | {per_seed} | {spread} "
            f"| {final.mean():.3f} ± {final.std():.3f} | {loss.mean():.3f} ± {loss.std():.3f} |")


def table(results: dict) -> str:
    """The sweep (seed 0: final training loss and test accuracy per rate, the chosen rate in bold), then rounds to
    target and the last 5 rounds' accuracy (mean ± std over seeds) at each method's chosen rate and at ``FIXED_LR``."""
    runs = results["runs"]
    out = ["Sweep (seed 0; training loss of the global model, mean of the last 5 rounds / test accuracy, last 5 "
           "rounds; **bold**: the chosen rate, lowest training loss):", "",
           "| setup | method | " + " | ".join(f"lr {lr:g}" for lr in LRS) + " |",
           "| --- | --- | " + " | ".join("---" for _ in LRS) + " |"]
    for setup in SETUPS:
        for method in METHODS:
            best = best_lr(runs, setup, method, complete=False)
            cells = []
            for lr in LRS:
                r = runs.get(_key(setup, method, lr, SWEEP_SEED))
                cell = "" if r is None else f"{final_train_loss(r):.3f} / {np.mean(r['accuracy'][-5:]):.3f}"
                cells.append(f"**{cell}**" if lr == best and cell else cell)
            out.append(f"| {setup} | {method} | " + " | ".join(cells) + " |")
    header = ["| setup (target) | method | client lr | seeds | rounds to target (per seed) | mean ± std "
              "| test accuracy, last 5 rounds | training loss, last 5 rounds |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    out += ["", "At each method's chosen rate:", "", *header]
    for setup in SETUPS:
        for method in METHODS:
            lr = best_lr(runs, setup, method, complete=False)
            tag = "tuned" if len(swept(runs, setup, method)) == len(LRS) else "best of " + ", ".join(
                f"{r:g}" for r in swept(runs, setup, method))
            row = _rows(runs, setup, method, lr, f"{lr:g} ({tag})") if lr is not None else None
            if row:
                out.append(row)
    out += ["", f"At the untuned lr {FIXED_LR:g} for every method:", "", *header]
    for setup in SETUPS:
        for method in METHODS:
            row = _rows(runs, setup, method, FIXED_LR, f"{FIXED_LR:g}")
            if row:
                out.append(row)
    return "\n".join(out) + "\n"


def plot(results: dict, path: Path) -> None:
    """Test accuracy per round (mean over seeds), one panel per setup: solid at the chosen rate, dotted at
    ``FIXED_LR``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, axes = plt.subplots(1, len(SETUPS), figsize=(11, 4))
    for ax, setup in zip(axes, SETUPS, strict=True):
        for i, method in enumerate(METHODS):
            lr = best_lr(runs, setup, method, complete=False)
            for rate, style, tag in ((lr, "-", "tuned"), (FIXED_LR, ":", "")):
                if style == ":" and rate == lr:
                    continue
                sel = [r["accuracy"] for r in _select(runs, setup, method, rate)] if rate is not None else []
                if sel:
                    acc = np.mean(sel, axis=0)
                    ax.plot(np.arange(1, len(acc) + 1), acc, style, color=f"C{i}",
                            label=f"{method}, lr {rate:g} {tag}".strip() + f" ({len(sel)} seeds)")
        ax.axhline(TARGETS[setup], color="grey", lw=0.8, ls="--")
        ax.set_title(setup)
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
