"""Privacy benchmarks: SecAgg+ overhead and privacy-utility trade-offs.

    python -m benchmarks.privacy            # all parts (about 10 minutes of CPU)
    python -m benchmarks.privacy overhead   # (a) only; also: utility, utility-secagg, noise, plot (redraw)

(a) SecAgg+ (and complete-graph SecAgg) vs plain aggregation: one round of n clients x 100k
    parameters, clients that return a fixed delta (no training), so the time is the protocol's.
    Plain and secure rounds are interleaved and repeated; the minimum is reported.
(b) Central DP-FedAvg on digits: final accuracy for a target epsilon in {1, 2, 4, 8} and without DP.
(c) The same with SecAgg+ underneath (clients clip, the server noises the secure sum).
(d) noise: the time of one Gaussian release on 100k coordinates: the old float Gaussian from a
    seeded numpy generator against the exact discrete Gaussian from the OS CSPRNG (best of 5).
spread (not in the default parts, about 5 minutes): (b) again for loop seeds 0-9, the data split
    fixed, to see the run-to-run spread of accuracy (noise, sampling and task seeds vary).
spread-pld: the same with the noise calibrated by (and accounted with) the PLD accountant.
    ``benchmarks/privacy/spread_before.py`` runs the same spread on the code from before issue 10.

Results go to ``benchmarks/privacy/results.json`` and the plot to ``privacy_utility.png``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from fedloom import RunConfig, run_simulation
from fedloom.backends import InlinePool
from fedloom.core.client import Client
from fedloom.core.client_state import ClientStateStore
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes
from fedloom.privacy.secagg import SecAggClient, SecAggPool, default_degree
from fedloom.strategies import FedAvg

HERE = Path(__file__).parent
DIM = 100_000
EPSILONS = (1.0, 2.0, 4.0, 8.0, None)
UTILITY = {"dataset": "digits", "clients": 100, "fraction": 0.2, "rounds": 20, "lr": 0.1, "clip": 0.5,
           "progress": False, "seed": 0}


class FixedDelta(Client):
    def __init__(self, delta: np.ndarray) -> None:
        self.delta = delta

    def get_parameters(self, config: Config) -> Parameters:
        return Parameters({"w": np.zeros(DIM, np.float32)})

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return FitRes(Parameters({"w": parameters["w"] + self.delta}), 100)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return EvaluateRes(0.0, 1, {})


def _round(pool, n: int) -> tuple[float, int, int]:
    glob = Parameters({"w": np.zeros(DIM, np.float32)})
    strategy = FedAvg()
    state = strategy.initialize(glob)
    tasks = [(str(i), FitIns(glob, {"round": 1, "seed": i})) for i in range(n)]
    start = time.perf_counter()
    out = pool.fit(tasks, expected=glob.spec())
    strategy.aggregate_fit(state, 1, out.results, out.failures)
    return time.perf_counter() - start, out.stats.bytes_up // n, out.stats.bytes_down // n


def overhead(repeats: int = 3) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for n in (10, 50, 100):
        deltas = [rng.normal(0, 0.01, DIM).astype(np.float32) for _ in range(n)]
        store = ClientStateStore()

        def plain_fn(cid: str, deltas: list[np.ndarray] = deltas) -> Client:
            return FixedDelta(deltas[int(cid)])

        def secure_fn(cid: str, deltas: list[np.ndarray] = deltas, store: ClientStateStore = store) -> Client:
            return SecAggClient(FixedDelta(deltas[int(cid)]), state=store.get(cid))

        pools = {
            "plain": InlinePool(plain_fn, n),
            "secagg+": SecAggPool(InlinePool(secure_fn, n), clip=10.0),
            "secagg (complete)": SecAggPool(InlinePool(secure_fn, n), neighbours=-1, clip=10.0),
        }
        best: dict[str, tuple[float, int, int]] = {}
        for _ in range(repeats):  # interleaved: every variant once per repeat
            for name, pool in pools.items():
                t, up, down = _round(pool, n)
                if name not in best or t < best[name][0]:
                    best[name] = (t, up, down)
        for name, (t, up, down) in best.items():
            rows.append({"clients": n, "variant": name, "seconds": t, "bytes_up_per_client": up,
                         "bytes_down_per_client": down, "slowdown": t / best["plain"][0],
                         "neighbours": n - 1 if "complete" in name else (default_degree(n) if "+" in name else 0)})
            print(f"  n={n:3d} {name:18s} {t:7.3f}s  up {up / 1e3:8.1f} kB  down {down / 1e3:8.1f} kB", flush=True)
    return rows


def utility(secagg: bool) -> list[dict]:
    rows = []
    for eps in EPSILONS:
        extra = {"dp": "central", "target_epsilon": eps} if eps is not None else {}
        cfg = RunConfig(**UTILITY, secagg=secagg, **extra)
        start = time.perf_counter()
        result = run_simulation(cfg)
        last = result.history[-1].metrics
        rows.append({"target_epsilon": eps, "epsilon": last.get("epsilon"), "accuracy": last["accuracy"],
                     "secagg": secagg, "seconds": time.perf_counter() - start,
                     "noise_multiplier": last.get("train_dp_noise_std", 0.0) * 20 / UTILITY["clip"]})
        print(f"  secagg={secagg} eps={eps}: accuracy {last['accuracy']:.4f} (spent {last.get('epsilon')})",
              flush=True)
    return rows


def spread(loop_seeds: tuple[int, ...] = tuple(range(10)), accountant: str = "rdp") -> list[dict]:
    from fedloom.app.build import assemble_loop, build_simulation, make_run_pool

    rows = []
    for eps in EPSILONS[:-1]:
        for k in loop_seeds:
            cfg = RunConfig(**UTILITY, dp="central", target_epsilon=eps, accountant=accountant)
            sim = build_simulation(cfg)
            pool = make_run_pool(cfg, sim)
            loop = assemble_loop(sim, pool)
            loop.seed = k  # the split and the initial model stay those of seed 0
            try:
                acc = loop.run(sim.initial_parameters).history[-1].metrics["accuracy"]
            finally:
                pool.close()
            rows.append({"target_epsilon": eps, "loop_seed": k, "accuracy": acc, "accountant": accountant})
            print(f"  {accountant} eps={eps} loop seed {k}: accuracy {acc:.4f}", flush=True)
    return rows


def noise(repeats: int = 5) -> list[dict]:
    from fedloom.privacy.noise import SYSTEM, gaussian_release

    values = np.random.default_rng(0).normal(0, 0.01, DIM)
    variants = {
        "float Gaussian, seeded numpy generator (old)":
            lambda: values + np.random.default_rng(0).normal(0.0, 1.0, DIM),
        "discrete Gaussian, OS CSPRNG (now)":
            lambda: gaussian_release(values, sensitivity=1.0, noise_multiplier=1.0, source=SYSTEM),
    }
    rows = []
    for name, draw in variants.items():
        best = min(_timed(draw) for _ in range(repeats))
        rows.append({"variant": name, "coordinates": DIM, "seconds": best})
        print(f"  {name:46s} {best * 1e3:8.2f} ms per {DIM} coordinates", flush=True)
    return rows


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    styles = {"utility": {"marker": "o", "linestyle": "-"},
              "utility-secagg": {"marker": "s", "linestyle": ":", "markerfacecolor": "none", "markersize": 10}}
    for key, label in (("utility", "central DP"), ("utility-secagg", "central DP + SecAgg+")):
        rows = [r for r in results.get(key, []) if r["target_epsilon"] is not None]
        if rows:
            ax.plot([r["target_epsilon"] for r in rows], [r["accuracy"] for r in rows], label=label, **styles[key])
        free = [r for r in results.get(key, []) if r["target_epsilon"] is None]
        if free:
            ax.axhline(free[0]["accuracy"], linestyle="--", color="grey" if key == "utility" else "black",
                       label=f"no DP{' + SecAgg+' if key != 'utility' else ''}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("epsilon (delta = 1e-5)")
    ax.set_ylabel("final accuracy (digits)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "privacy_utility.png", dpi=120)


def main(argv: list[str]) -> None:
    parts = argv or ["overhead", "utility", "utility-secagg", "noise"]
    path = HERE / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for part in parts:
        print(f"== {part}", flush=True)
        if part == "overhead":
            results[part] = overhead()
        elif part == "utility":
            results[part] = utility(secagg=False)
        elif part == "utility-secagg":
            results[part] = utility(secagg=True)
        elif part == "noise":
            results[part] = noise()
        elif part == "spread":
            results[part] = spread()
        elif part == "spread-pld":
            results[part] = spread(accountant="pld")
        elif part == "plot":
            continue
        else:
            raise SystemExit(f"unknown part {part!r}; choose overhead, utility, utility-secagg, noise, spread, "
                             "spread-pld, plot")
        path.write_text(json.dumps(results, indent=2))
    plot(results)


if __name__ == "__main__":
    main(sys.argv[1:])
