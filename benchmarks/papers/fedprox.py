"""FedProx on Synthetic(alpha, beta) with the paper's protocol (Li et al., MLSys 2020, Algorithm 2).

Builds on :mod:`benchmarks.fedprox_synthetic` (same data generator, same model, same metrics) and
changes what that benchmark did its own way:

* devices are sampled with probability ``n_k / n`` with replacement (``FedProx(sampling="size")``)
  and the returned models averaged with equal weights (``weighted=False``, i.e. ``--weighting
  uniform``): Algorithm 2 of the paper;
* exactly ``round(K * 0.9)`` of the ``K = 10`` draws straggle each round (the paper's code:
  ``np.random.choice(selected, round(K * (1 - drop)))`` active), chosen by a generator seeded with
  the round, so FedAvg and FedProx see the same stragglers; a straggler does ``U{1..E-1}`` epochs;
* the paper's baseline FedAvg *drops* the stragglers (with 90% stragglers: one device per round);
  FedProx mu = 0 and mu = 1 aggregate their partial work;
* the local solver is :mod:`benchmarks.papers.fastsgd` (the same SGD, in C).

Usage::

    python -m benchmarks.papers fedprox --rounds 200 --seeds 0 1 2
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fedprox_synthetic.__main__ import DATASETS, _loss_acc
from benchmarks.papers.fastsgd import local_sgd
from fedloom import Client, EvaluateRes, FitRes, Parameters, simulate
from fedloom.core.strategy import ServerState
from fedloom.core.types import ClientId, Config, FitIns
from fedloom.data.synthetic import SYNTHETIC_DATASETS, SyntheticData, generate_synthetic
from fedloom.strategies import FedProx

HERE = Path(__file__).resolve().parent
METHODS = ["fedavg", "fedprox_mu0", "fedprox_mu1"]
"""FedAvg dropping stragglers (the paper's baseline), FedProx mu=0 and mu=1 keeping partial work."""


class FastLogisticClient(Client):
    """One device: minibatch SGD on softmax regression (+ the proximal term if the task sends mu)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, num_classes: int = 10) -> None:
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        self.y = np.ascontiguousarray(y, dtype=np.int64)
        self.num_classes = num_classes

    def get_parameters(self, config: Config) -> Parameters:
        return Parameters({"weight": np.zeros((self.num_classes, self.x.shape[1])),
                           "bias": np.zeros(self.num_classes)})

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        rng = np.random.default_rng(int(config["seed"]))
        n = len(self.y)
        perms = np.stack([rng.permutation(n) for _ in range(int(config["local_epochs"]))])
        w, b = local_sgd(self.x, self.y, parameters["weight"].T, parameters["bias"], perms=perms,
                         lr=float(config["lr"]), batch_size=int(config["batch_size"]),
                         mu=float(config.get("proximal_mu", 0.0)))
        return FitRes(Parameters({"weight": np.ascontiguousarray(w.T), "bias": b}), n, {})

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        loss, acc = _loss_acc(parameters, self.x, self.y)
        return EvaluateRes(loss, len(self.y), {"accuracy": acc})


class PaperProtocol(FedProx):
    """FedProx (or, with ``drop_stragglers``, FedAvg) with the paper's straggler protocol.

    Each round, of the ``K`` draws, ``round(K * (1 - straggle))`` chosen uniformly without replacement
    (by a generator seeded with ``(straggler_seed, round)``) finish ``E`` epochs; every other drawn
    device is a straggler and does ``U{1..E-1}`` epochs, or, with ``drop_stragglers``, is not
    asked to train at all (the paper's FedAvg drops them).
    """

    def __init__(self, *, straggle: float, drop_stragglers: bool, straggler_seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.straggle = straggle
        self.drop_stragglers = drop_stragglers
        self.straggler_seed = straggler_seed

    def round_fit_config(self, state: ServerState, rnd: int) -> Config:
        config = super().round_fit_config(state, rnd)
        if self.drop_stragglers:  # FedAvg: the plain objective, and no partial work accepted
            config.pop("proximal_mu", None)
            config.pop("accept_partial_work", None)
        return config

    def configure_fit(self, state: ServerState, rnd: int,
                      clients: Sequence[ClientId]) -> list[tuple[ClientId, FitIns]]:
        tasks = super().configure_fit(state, rnd, clients)
        if self.straggle <= 0:
            return tasks
        counts = self.draws(rnd)
        draws = [cid for cid, _ in tasks for _ in range(counts.get(cid, 1))]  # the K draws, duplicates included
        rng = np.random.default_rng([self.straggler_seed, rnd])
        active_positions = rng.choice(len(draws), round(len(draws) * (1 - self.straggle)), replace=False)
        active = {draws[i] for i in active_positions}
        epochs = int(self.fit_config["local_epochs"])
        out = []
        for cid, ins in tasks:
            if cid in active:
                out.append((cid, ins))
            elif not self.drop_stragglers:
                ins.config["local_epochs"] = int(rng.integers(1, epochs))  # U{1..E-1}, as the paper's code
                out.append((cid, ins))
        return out


def run_one(data: SyntheticData, *, method: str, straggle: float, seed: int, rounds: int,
            epochs: int = 20) -> dict:
    """One run; per-round test accuracy and training loss of the global model on all devices."""
    x_tr = np.concatenate(data.x_train).astype(np.float64)
    y_tr = np.concatenate(data.y_train)
    x_te = np.concatenate(data.x_test).astype(np.float64)
    y_te = np.concatenate(data.y_test)

    def evaluate(params: Parameters) -> EvaluateRes:
        test_loss, test_acc = _loss_acc(params, x_te, y_te)
        train_loss, _ = _loss_acc(params, x_tr, y_tr)
        return EvaluateRes(test_loss, len(y_te), {"accuracy": test_acc, "global_train_loss": train_loss})

    clients = [FastLogisticClient(data.x_train[k], data.y_train[k]) for k in range(data.num_devices)]
    strategy = PaperProtocol(
        straggle=straggle, drop_stragglers=method == "fedavg", straggler_seed=seed,
        proximal_mu=1.0 if method == "fedprox_mu1" else 0.0,
        sampling="size", weighted=False,  # Algorithm 2: draws proportional to n_k, simple average
        fraction_fit=10 / data.num_devices, min_fit_clients=10,
        fit_config={"local_epochs": epochs, "lr": 0.01, "batch_size": 10},
        evaluate_fn=evaluate, fraction_evaluate=0.0,
        max_weight_ratio=0.0, max_norm_ratio=0.0,  # the paper has no caps
        assigned_examples={str(k): len(data.y_train[k]) for k in range(data.num_devices)},
    )
    result = simulate(lambda cid: clients[int(cid)], num_clients=data.num_devices, strategy=strategy,
                      rounds=rounds, seed=seed)
    return {"accuracy": [h.metrics["accuracy"] for h in result.history],
            "train_loss": [h.metrics["global_train_loss"] for h in result.history],
            "clients": [h.metrics.get("fit_clients", 0.0) for h in result.history]}


def run(out: Path, *, rounds: int, seeds: Sequence[int], datasets: Sequence[str] = DATASETS,
        stragglers: Sequence[float] = (0.0, 0.9), data_seed: int = 0) -> dict:
    """Run every (seed, dataset, stragglers, method) not yet in ``out``; results saved after each run."""
    results: dict = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    results["protocol"] = {"rounds": rounds, "local_epochs": 20, "lr": 0.01, "batch_size": 10, "draws_per_round": 10,
                           "sampling": "size", "weighting": "uniform", "data_seed": data_seed}
    data = {n: generate_synthetic(*SYNTHETIC_DATASETS[n][:2], iid=SYNTHETIC_DATASETS[n][2], seed=data_seed)
            for n in datasets}
    for seed in seeds:
        for name in datasets:
            for strag in stragglers:
                for method in METHODS:
                    if method == "fedavg" and strag == 0:
                        continue  # without stragglers FedAvg is FedProx mu=0 (same sampling, same clients)
                    key = f"{name}|{strag}|{method}|{seed}"
                    if key in results["runs"] and len(results["runs"][key]["accuracy"]) == rounds:
                        continue
                    start = time.perf_counter()
                    res = run_one(data[name], method=method, straggle=strag, seed=seed, rounds=rounds)
                    res["wall_s"] = time.perf_counter() - start
                    results["runs"][key] = res
                    out.write_text(json.dumps(results))
                    print(f"{key}: acc {res['accuracy'][-1]:.4f} loss {res['train_loss'][-1]:.4f} "
                          f"({res['wall_s']:.1f} s)", flush=True)
    return results


def _final(runs: dict, prefix: str, metric: str) -> np.ndarray:
    return np.array([np.mean(r[metric][-5:]) for k, r in runs.items() if k.startswith(prefix)])


def table(results: dict) -> str:
    """Markdown: mean ± std over seeds of the last 5 rounds, per dataset, stragglers and method."""
    runs = results["runs"]
    lines = ["| dataset | stragglers | method | seeds | test accuracy | training loss |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in DATASETS:
        for strag in (0.0, 0.9):
            for method in METHODS:
                key = method if not (method == "fedavg" and strag == 0) else "fedprox_mu0"
                if method == "fedavg" and strag == 0:
                    continue
                acc = _final(runs, f"{name}|{strag}|{key}|", "accuracy")
                loss = _final(runs, f"{name}|{strag}|{key}|", "train_loss")
                if len(acc):
                    label = {"fedavg": "FedAvg (drops stragglers)", "fedprox_mu0": "FedProx mu=0",
                             "fedprox_mu1": "FedProx mu=1"}[method]
                    if strag == 0 and method == "fedprox_mu0":
                        label = "FedAvg = FedProx mu=0"
                    lines.append(f"| {name} | {strag:.0%} | {label} | {len(acc)} | {acc.mean():.3f} ± {acc.std():.3f} "
                                 f"| {loss.mean():.3f} ± {loss.std():.3f} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Training loss and test accuracy per round (mean ± std over seeds), one column per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, axes = plt.subplots(2, 4, figsize=(16, 6.5), squeeze=False)
    for j, name in enumerate(DATASETS):
        for strag, style in ((0.0, "-"), (0.9, ":")):
            for method, color in zip(METHODS, ("tab:red", "tab:blue", "tab:green"), strict=True):
                sel = [r for k, r in runs.items() if k.startswith(f"{name}|{strag}|{method}|")]
                if not sel:
                    continue
                for i, metric in enumerate(("train_loss", "accuracy")):
                    curves = np.array([r[metric] for r in sel])
                    x = np.arange(1, curves.shape[1] + 1)
                    m = curves.mean(axis=0)
                    axes[i, j].plot(x, m, style, color=color, label=f"{method}, {strag:.0%} stragglers")
                    axes[i, j].fill_between(x, m - curves.std(axis=0), m + curves.std(axis=0), color=color,
                                            alpha=0.12)
        axes[0, j].set_title(name)
        axes[0, j].set_ylabel("training loss")
        axes[0, j].set_yscale("log")
        axes[1, j].set_ylabel("test accuracy")
        axes[1, j].set_xlabel("round")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
