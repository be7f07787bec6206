"""Personalization and per-client fairness: ``python -m benchmarks.personalization [--seeds 0 1 2] [--rounds R]``.

Mean, 10th-percentile and worst client accuracy (each client's own held-out split, the last round's
federated evaluation, each client counted once) of FedAvg, FedAvg + fine-tuning, FedPer, FedRep,
Ditto, q-FedAvg and purely local training, on ``digits`` and the 5,000-image MNIST subset, split by
Dirichlet(alpha = 0.1) and by shards (2 classes per client). Writes ``results.json``, ``table.md``
and ``clients.png`` here; ``RESULTS.md`` quotes them.

Six runs per (dataset, split, seed) give the seven rows: the ``finetune`` run's global model is
FedAvg (its clients train exactly as FedAvg's) and its fine-tuned model FedAvg + fine-tuning; Ditto
with lambda = 0 is purely local training (its personal model never sees the global one; tested in
tests/personalization), and its global model is FedAvg again (a check: the same numbers).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

SETTINGS: dict[str, Any] = dict(clients=10, fraction=1.0, fraction_evaluate=1.0, local_epochs=1, batch_size=16,
                                lr=0.05, model="mlp", hidden=64, central_eval="none", progress=False,
                                client_test_fraction=0.25)
SPLITS = {"dirichlet 0.1": dict(partition="dirichlet", alpha=0.1), "shards 2": dict(partition="shards",
                                                                                     shards_per_client=2)}
RUNS = {  # run name -> config; each row of the table reads one metric of one run
    "finetune": dict(personalization="finetune", finetune_steps=10),
    "fedper": dict(personalization="fedper"),
    "fedrep": dict(personalization="fedrep", head_epochs=2),
    "ditto": dict(personalization="ditto", ditto_lambda=0.5),
    "local": dict(personalization="ditto", ditto_lambda=0.0),
    "qfedavg": dict(strategy="qfedavg", q=1.0),
    "apfl": dict(personalization="apfl", apfl_alpha=0.5),
}
ROWS = {  # table row -> (run, per-client metric)
    "FedAvg (global model)": ("finetune", "accuracy"),
    "FedAvg + fine-tuning (10 steps)": ("finetune", "personal_accuracy"),
    "FedPer": ("fedper", "personal_accuracy"),
    "FedRep": ("fedrep", "personal_accuracy"),
    "Ditto (lambda 0.5)": ("ditto", "personal_accuracy"),
    "APFL (alpha 0.5, adaptive)": ("apfl", "personal_accuracy"),
    "q-FedAvg (q 1)": ("qfedavg", "accuracy"),
    "local only": ("local", "personal_accuracy"),
}


def one(dataset: str, split: str, run: str, seed: int, rounds: int) -> dict[str, Any]:
    """One run: every client's last federated evaluation."""
    import torch

    from fedloom import RunConfig, run_simulation

    torch.set_num_threads(1)
    cfg = RunConfig(dataset=dataset, rounds=rounds, eval_every=rounds, seed=seed, **SETTINGS, **SPLITS[split],
                    **RUNS[run])
    start, cpu = time.perf_counter(), time.process_time()
    result = run_simulation(cfg)
    return {"clients": result.history[-1].clients, "wall_s": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu}


def stats(values: list[float]) -> dict[str, float]:
    from fedloom.runs.clients import distribution

    return distribution(values, higher_is_better=True)


def table(results: dict[str, Any]) -> str:
    """The markdown table: mean / p10 / worst client accuracy, mean ± std over seeds."""
    lines = []
    for dataset in results["datasets"]:
        for split in SPLITS:
            lines += [f"\n**{dataset}, {split}** (mean ± std over seeds {results['seeds']})\n",
                      "| method | mean client acc. | p10 client acc. | worst client acc. |",
                      "| --- | --- | --- | --- |"]
            for row, (run, metric) in ROWS.items():
                cells = []
                for stat in ("mean", "p10", "worst"):
                    runs = [results["runs"][f"{dataset}|{split}|{run}|{s}"]["clients"] for s in results["seeds"]]
                    vals = [stats([c[metric] for c in clients.values()])[stat] for clients in runs]
                    cells.append(f"{np.mean(vals):.3f} ± {np.std(vals):.3f}")
                lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Per-client accuracy of every method, all seeds pooled: one box per method, one panel per (dataset, split)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(d, s) for d in results["datasets"] for s in SPLITS]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), sharey=True)
    for ax, (dataset, split) in zip(np.atleast_1d(axes), panels, strict=True):
        data = [[c[metric] for s in results["seeds"]
                 for c in results["runs"][f"{dataset}|{split}|{run}|{s}"]["clients"].values()]
                for run, metric in ROWS.values()]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(ROWS) + 1))
        ax.set_xticklabels([r.split(" (")[0].replace("FedAvg + fine-tuning", "FedAvg+FT") for r in ROWS],
                           rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{dataset}, {split}", fontsize=9)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("client accuracy (own held-out data)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--datasets", nargs="+", default=["digits", "mnist"])
    ap.add_argument("--report", action="store_true", help="only rebuild table.md and clients.png from results.json")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in results.json (same settings)")
    ap.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--out", type=Path, default=HERE / "results.json", help="where the runs go")
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="first merge the runs of these files (other processes' --out) into --out")
    args = ap.parse_args(argv)
    out = args.out
    for other in args.merge:  # runs split over processes (a busy machine gives each process its share)
        merged = json.loads(out.read_text())
        merged["runs"].update(json.loads(other.read_text())["runs"])
        out.write_text(json.dumps(merged, indent=1))
    if not args.report and not args.merge:
        settings = {**SETTINGS, "rounds": args.rounds, "eval_every": args.rounds}
        results: dict[str, Any] = {"settings": settings, "splits": SPLITS, "runs_cfg": RUNS, "seeds": args.seeds,
                                   "datasets": ["digits", "mnist"], "runs": {}}
        if args.resume and out.exists():  # keep the runs of an interrupted invocation with the same settings
            old = json.loads(out.read_text())
            if old.get("settings") == settings:
                results["runs"] = old["runs"]
        for dataset in args.datasets:
            for split in args.splits:
                for seed in args.seeds:
                    for run in args.runs:
                        key = f"{dataset}|{split}|{run}|{seed}"
                        if key in results["runs"]:
                            continue
                        results["runs"][key] = one(dataset, split, run, seed, args.rounds)
                        r = results["runs"][key]
                        print(f"{key}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU", flush=True)
                        results["total_s"] = sum(v["wall_s"] for v in results["runs"].values())
                        results["total_cpu_s"] = sum(v.get("cpu_s", 0.0) for v in results["runs"].values())
                        out.write_text(json.dumps(results, indent=1))  # after every run: an interruption keeps them
    results = json.loads(out.read_text())
    text = table(results)
    (HERE / "table.md").write_text(text)
    plot(results, HERE / "clients.png")
    print(text)
    print(f"total {results.get('total_s', 0):.0f} s wall, {results.get('total_cpu_s', 0):.0f} s CPU")


if __name__ == "__main__":
    main()
