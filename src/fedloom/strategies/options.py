"""The algorithm section of a run: the strategy, its hyperparameters and the aggregator."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedloom.core.options import need, option
from fedloom.core.sampling import SAMPLING_SCHEMES, WEIGHTING_SCHEMES
from fedloom.errors import ConfigError
from fedloom.strategies.registry import AGGREGATORS, ROBUST_ALIASES, SERVER_OPTS, STRATEGIES

__all__ = ["StrategyOptions"]


@dataclass
class StrategyOptions:
    """``[algorithm]``: strategy, server optimizer hyperparameters, robust aggregation (docs/strategies.md)."""

    strategy: str = option("fedavg", "Aggregation strategy.", choices=lambda: STRATEGIES)
    aggregator: str = option("mean", "How client updates combine, for any strategy.", choices=lambda: AGGREGATORS)
    server_opt: str = option("", "Server optimizer composed into fedavg/fedprox/the robust aliases (empty = plain "
                             "averaging; fedavgm/fedadam/... are presets of it).", choices=lambda: SERVER_OPTS)
    sampling: str = option("", "Client sampling, for every strategy: uniform (K = ceil(fraction * clients) distinct "
                           "clients), size (K draws with replacement, each client with probability n_k/n: "
                           "FedProx's Algorithm 2; a client drawn m times trains once and counts m times), "
                           "poisson (each client with probability fraction). Empty = uniform, or poisson under "
                           "--dp central (its accountant assumes Poisson sampling).",
                           choices=lambda: SAMPLING_SCHEMES)
    weighting: str = option("examples", "How returned models are averaged: examples (weighted by example count) or "
                            "uniform (the plain mean; with --sampling size, FedProx's Algorithm 2). "
                            "--no-weighted is the same as uniform.", choices=lambda: WEIGHTING_SCHEMES)
    clip_update_norm: float = option(0.0, "Norm bounding: clip each client update to this L2 norm before "
                                     "aggregating (0 = off).")
    max_weight_ratio: float = option(10.0, "FedAvg family: cap the example count (weight) one client may claim at "
                                     "this many times the round's median claimed count; in simulation a claim is "
                                     "cut to the size of the split the client was given instead (0 = no cap).")
    max_norm_ratio: float = option(10.0, "FedAvg family: scale an update longer than this many times the round's "
                                   "median update norm down to it before aggregating (0 = off).")
    trim_beta: float = option(0.2, "trimmed_mean: fraction of values trimmed from each end per coordinate, "
                              "in [0, 0.5); it tolerates that fraction of attackers (0.2: the 20% the docs and "
                              "benchmarks use).")
    byzantine_f: int = option(1, "krum/multikrum/bulyan: Byzantine clients tolerated (Krum needs >= 2f+3 "
                              "results per round, Bulyan >= 4f+3).")
    multikrum_m: int = option(0, "multikrum: updates averaged (0 = results - byzantine_f).")
    proximal_mu: float = option(0.01, "fedprox: proximal coefficient mu of mu/2 ||w - w_global||^2.")
    q: float = option(1.0, "qfedavg: fairness exponent q >= 0 of q-FFL (0 = FedAvg; larger weighs high-loss clients "
                      "more).")
    server_lr: float = option(0.0, "Server learning rate of fedavgm/fedadam/fedyogi/fedadagrad/scaffold "
                              "(0 = the strategy's default: 1.0 for fedavgm and scaffold, 0.01 for "
                              "fedadam/fedyogi, 0.1 for fedadagrad).")
    server_momentum: float = option(0.9, "fedavgm: server momentum in [0, 1).")
    beta1: float = option(0.9, "fedadam/fedyogi/fedadagrad: first-moment decay in [0, 1).")
    beta2: float = option(0.99, "fedadam/fedyogi: second-moment decay in [0, 1).")
    tau: float = option(1e-3, "fedadam/fedyogi/fedadagrad: adaptivity (> 0; larger is closer to momentum SGD).")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        STRATEGIES.get(self.strategy)
        AGGREGATORS.get(self.aggregator)
        if self.server_opt:
            SERVER_OPTS.get(self.server_opt)
        self.effective_aggregator()
        need(self.sampling in ("", *SAMPLING_SCHEMES),
             f"sampling must be one of {', '.join(SAMPLING_SCHEMES)} (or empty), got {self.sampling!r}")
        need(self.weighting in WEIGHTING_SCHEMES,
             f"weighting must be one of {', '.join(WEIGHTING_SCHEMES)}, got {self.weighting!r}")
        need(self.clip_update_norm >= 0, f"clip_update_norm must be >= 0 (0 = off), got {self.clip_update_norm}")
        need(self.max_weight_ratio == 0 or self.max_weight_ratio >= 1,
             f"max_weight_ratio must be 0 (no cap) or >= 1, got {self.max_weight_ratio}")
        need(self.max_norm_ratio == 0 or self.max_norm_ratio >= 1,
             f"max_norm_ratio must be 0 (off) or >= 1, got {self.max_norm_ratio}")
        need(0.0 <= self.trim_beta < 0.5, f"trim_beta must be in [0, 0.5), got {self.trim_beta}")
        need(self.byzantine_f >= 0, f"byzantine_f must be >= 0, got {self.byzantine_f}")
        need(self.multikrum_m >= 0, f"multikrum_m must be >= 0 (0 = results - byzantine_f), got {self.multikrum_m}")
        need(self.proximal_mu >= 0, f"proximal_mu must be >= 0, got {self.proximal_mu}")
        need(self.q >= 0, f"q must be >= 0, got {self.q}")
        need(self.server_lr >= 0, f"server_lr must be >= 0 (0 = strategy default), got {self.server_lr}")
        need(0.0 <= self.server_momentum < 1.0, f"server_momentum must be in [0, 1), got {self.server_momentum}")
        need(0.0 <= self.beta1 < 1.0, f"beta1 must be in [0, 1), got {self.beta1}")
        need(0.0 <= self.beta2 < 1.0, f"beta2 must be in [0, 1), got {self.beta2}")
        need(self.tau > 0, f"tau must be > 0, got {self.tau}")

    def tolerated(self, cohort: int) -> int | None:
        """How many Byzantine clients among ``cohort`` results the selected aggregator is built to withstand:
        0 for the mean (the weight and norm caps bound one client's influence, they do not remove it),
        fewer than half for the median, ``floor(trim_beta * n)`` for the trimmed mean, ``byzantine_f``
        for Krum, Multi-Krum and Bulyan; ``None`` for an aggregator it does not know (a plugin)."""
        name = self.effective_aggregator()
        if name == "median":
            return max(0, (cohort - 1) // 2)
        if name == "trimmed_mean":
            return int(math.floor(self.trim_beta * cohort + 1e-9))
        if name in ("krum", "multikrum", "bulyan"):
            return self.byzantine_f
        return 0 if name == "mean" else None

    def effective_aggregator(self) -> str:
        """The aggregator name selected (``--aggregator``, or a robust ``--strategy`` alias)."""
        if self.strategy in ROBUST_ALIASES:
            if self.aggregator not in ("mean", self.strategy):
                raise ConfigError(
                    f"--strategy {self.strategy} is FedAvg with --aggregator {self.strategy}; "
                    f"it conflicts with --aggregator {self.aggregator}"
                )
            return self.strategy
        return self.aggregator
