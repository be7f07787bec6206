"""The run-to-run spread of DP accuracy on the code from BEFORE issue 10 (commit b99b676).

That code had fixed-size cohorts and seeded float noise; ``python -m benchmarks.privacy spread``
measures today's. Run this one against a checkout of the old commit::

    git worktree add --detach ../fedloom-b99b676 b99b676
    PYTHONPATH=../fedloom-b99b676/src python benchmarks/privacy/spread_before.py

It uses the old module layout (``fedloom.simulation``) and prints one line per epsilon: the mean,
standard deviation and accuracies of loop seeds 0-9 in the setup of ``benchmarks.privacy``
(100 clients, fraction 0.2, 20 rounds, lr 0.1, clip 0.5, data split and model of seed 0).
"""

from __future__ import annotations

import importlib

import numpy as np

UTILITY = {"dataset": "digits", "clients": 100, "fraction": 0.2, "rounds": 20, "lr": 0.1, "clip": 0.5,
           "progress": False, "seed": 0}


def main() -> None:
    fedloom = importlib.import_module("fedloom")
    old = importlib.import_module("fedloom.simulation")  # the pre-issue-12 layout
    for eps in (1.0, 2.0, 4.0, 8.0):
        accs = []
        for k in range(10):
            cfg = fedloom.RunConfig(**UTILITY, dp="central", target_epsilon=eps)
            sim = old.build_simulation(cfg)
            pool = old.make_pool(cfg.backend, sim.client_fn, cfg.clients, **old.backend_options(cfg, sim))
            loop = old.assemble_loop(sim, pool)
            loop.seed = k
            try:
                accs.append(loop.run(sim.initial_parameters).history[-1].metrics["accuracy"])
            finally:
                loop.pool.close()
        print(f"eps={eps}: mean {np.mean(accs):.4f} sd {np.std(accs, ddof=1):.4f} "
              f"accuracies {[round(a, 4) for a in accs]}", flush=True)


if __name__ == "__main__":
    main()
