"""Adversarial clients against each aggregator: final accuracy, side by side (issue 10).

Digits, 20 clients, multinomial logistic regression (``--model linear``), all clients every round,
one seed. For each partition (IID and Dirichlet alpha=0.5) and attacker fraction (10% and 20%), the
clean run and each attack: ``sign_flip`` (x4), ``scale`` (x1000), ``huge_weight`` (the flipped
update with 10^15 claimed examples), ``alie`` and ``label_flip``, against FedAvg with the default
weight and norm caps (in simulation a claimed example count is cut to the client's split), FedAvg
with the caps a deployed server applies (it does not know the counts: 10x the round's median
claim), FedAvg with both caps off (plain FedAvg, what fedloom did before issue 10),
the coordinate median, the trimmed mean (default trim_beta 0.2), Krum and Bulyan (byzantine_f = the
number of attackers). Everything goes through :func:`fedloom.run_simulation` with a
:class:`fedloom.RunConfig`, i.e. what ``fedloom run --attack ... --aggregator ...`` runs.

Usage::

    python -m benchmarks.adversarial                # ~3-5 minutes on 2 cores
    python -m benchmarks.adversarial --report-only  # rebuild table.md from results.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fedloom import RunConfig, run_simulation
from fedloom.app.build import assemble_loop, build_simulation, make_run_pool

HERE = Path(__file__).resolve().parent
ATTACKS = {
    "none": {},
    "sign_flip": {"attack": "sign_flip", "attack_scale": 4.0},
    "scale": {"attack": "scale", "attack_scale": 1000.0},
    "huge_weight": {"attack": "huge_weight"},
    "alie": {"attack": "alie"},
    "label_flip": {"attack": "label_flip"},
}
DEPLOYED = "FedAvg, deployment caps"
AGGREGATORS = {
    "FedAvg (default caps)": {"aggregator": "mean"},
    DEPLOYED: {"aggregator": "mean"},
    "FedAvg, caps off": {"aggregator": "mean", "max_weight_ratio": 0.0, "max_norm_ratio": 0.0},
    "median": {"aggregator": "median"},
    "trimmed_mean (beta 0.2)": {"aggregator": "trimmed_mean"},
    "krum (f = attackers)": {"aggregator": "krum"},
    "bulyan (f = attackers)": {"aggregator": "bulyan"},
}
PARTITIONS = {"iid": {"partition": "iid"}, "dirichlet 0.5": {"partition": "dirichlet", "alpha": 0.5}}
FRACTIONS = [0.1, 0.2]


def _config(args: argparse.Namespace, partition: str, fraction: float, attack: str, aggregator: str) -> RunConfig:
    f = int(round(fraction * args.clients))
    attacked = attack != "none"
    return RunConfig(dataset="digits", model="linear", clients=args.clients, rounds=args.rounds, lr=0.1,
                     local_epochs=1, batch_size=16, client_test_fraction=0.0, seed=args.seed, progress=False,
                     eval_every=args.rounds, byzantine_f=f, attackers=fraction if attacked else 0.0,
                     **PARTITIONS[partition], **ATTACKS[attack], **AGGREGATORS[aggregator])


def _accuracy(cfg: RunConfig, label: str) -> float:
    if label != DEPLOYED:
        return run_simulation(cfg).final["accuracy"]
    # what a deployed server runs: the same strategy, without the simulation's knowledge of each split's size
    sim = build_simulation(cfg)
    loop = assemble_loop(sim, make_run_pool(cfg, sim))
    try:
        return loop.run(sim.initial_parameters).final["accuracy"]
    finally:
        loop.pool.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared CPU

    results: dict = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    if not args.report_only:
        results["protocol"] = {"dataset": "digits", "model": "linear", "rounds": args.rounds, "clients": args.clients,
                               "seed": args.seed, "fractions": FRACTIONS, "partitions": list(PARTITIONS),
                               "attacks": ATTACKS, "aggregators": AGGREGATORS}
        start_all = time.perf_counter()
        for partition in PARTITIONS:
            for fraction in FRACTIONS:
                for attack in ATTACKS:
                    for label in AGGREGATORS:
                        key = f"{partition}|{fraction}|{attack}|{label}"
                        if key in results["runs"]:
                            continue
                        cfg = _config(args, partition, fraction, attack, label)
                        start = time.process_time()
                        try:
                            acc: float | str = _accuracy(cfg, label)
                        except Exception as exc:  # a round refused (e.g. the global-model check): report it
                            acc = f"failed: {type(exc).__name__}: {exc}"
                        results["runs"][key] = {"accuracy": acc, "cpu_s": time.process_time() - start}
                        args.out.write_text(json.dumps(results, indent=1))
                        shown = f"{acc:.4f}" if isinstance(acc, float) else acc
                        print(f"{key}: {shown}", flush=True)
        if time.perf_counter() - start_all > 1.0:  # runs were made now (not all read back from results.json)
            results["wall_s"] = time.perf_counter() - start_all
        # the price of noise nobody can replay: one release on 100k coordinates, old vs now
        from benchmarks.privacy.__main__ import noise

        results["noise"] = noise()
        args.out.write_text(json.dumps(results, indent=1))
    report(results)


def _cell(runs: dict, partition: str, attack: str, label: str) -> str:
    values = []
    for fraction in FRACTIONS:
        run = runs.get(f"{partition}|{fraction}|{attack}|{label}")
        if run is None:
            values.append("")
        elif isinstance(run["accuracy"], float):
            values.append(f"{run['accuracy']:.3f}")
        else:
            values.append("fails")
    return " / ".join(values)


def report(results: dict) -> None:
    """Write table.md: per partition, rows aggregators, columns attacks, cells '10% / 20%'."""
    runs = results["runs"]
    lines = []
    for partition in PARTITIONS:
        lines += [f"**digits, {partition}** (each cell: 10% / 20% attackers)", "",
                  "| aggregator | " + " | ".join("clean" if a == "none" else a for a in ATTACKS) + " |",
                  "| --- |" + " --- |" * len(ATTACKS)]
        for label in AGGREGATORS:
            lines.append(f"| {label} | " + " | ".join(_cell(runs, partition, a, label) for a in ATTACKS) + " |")
        lines.append("")
    if results.get("noise"):
        old, new = results["noise"][0], results["noise"][-1]
        lines += ["**Secure noise** (one Gaussian release, same run, best of 5):", "",
                  "| noise | time per 100k coordinates | ratio |", "| --- | ---: | ---: |"]
        for row in results["noise"]:
            ratio = row["seconds"] / old["seconds"]
            lines.append(f"| {row['variant']} | {row['seconds'] * 1e3:.2f} ms | {ratio:.0f}x |")
        lines += ["", f"The discrete Gaussian from the OS CSPRNG costs {new['seconds'] * 1e3:.0f} ms per 100k "
                  "coordinates per round: negligible next to a round's training.", ""]
    failures = {k: r["accuracy"] for k, r in runs.items() if not isinstance(r["accuracy"], float)}
    if failures:
        lines += ["Runs that failed:", ""] + [f"- `{k}`: {v}" for k, v in failures.items()] + [""]
    cpu = sum(r["cpu_s"] for r in runs.values())
    lines.append(f"{len(runs)} runs, {cpu:.0f} s of CPU" + (f", {results['wall_s']:.0f} s wall" if "wall_s" in results
                                                              else "") + ".")
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print((HERE / "table.md").read_text())


if __name__ == "__main__":
    main()
