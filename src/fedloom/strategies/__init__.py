"""Strategy implementations (one module per family) and the registry used by ``--strategy``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fedloom.core.server_opt import ServerOpt, chain
from fedloom.core.strategy import Strategy
from fedloom.strategies.aggregators import Aggregator, WeightedMean
from fedloom.strategies.fedavg import CentralEvaluateFn, FedAvg
from fedloom.strategies.fedopt import FedAdagrad, FedAdam, FedAvgM, FedOpt, FedYogi
from fedloom.strategies.fedprox import FedProx
from fedloom.strategies.robust import (
    AGGREGATORS,
    Bulyan,
    CoordinateMedian,
    Krum,
    MultiKrum,
    NormBound,
    TrimmedMean,
    build_aggregator,
)
from fedloom.strategies.scaffold import Scaffold
from fedloom.strategies.server_opts import adagrad, adam, momentum, sgd, yogi

if TYPE_CHECKING:
    from fedloom.config import RunConfig

StrategyBuilder = Callable[["RunConfig", dict], Strategy]
"""Builds a strategy from the run config and common keyword arguments (sampling, evaluation)."""


def _fedavg(cfg: RunConfig, common: dict) -> Strategy:
    return FedAvg(**common)


# -- strategy library (issue 3) ---------------------------------------------------------------
def _fedprox(cfg: RunConfig, common: dict) -> Strategy:
    return FedProx(proximal_mu=cfg.proximal_mu, **common)


def _fedavgm(cfg: RunConfig, common: dict) -> Strategy:
    return FedAvgM(server_lr=cfg.server_lr or 1.0, server_momentum=cfg.server_momentum, **common)


def _fedopt(cls: type[FedOpt]) -> StrategyBuilder:
    def build(cfg: RunConfig, common: dict) -> Strategy:
        return cls(server_lr=cfg.server_lr or None, beta1=cfg.beta1, beta2=cfg.beta2, tau=cfg.tau, **common)

    return build


def _scaffold(cfg: RunConfig, common: dict) -> Strategy:
    return Scaffold(server_lr=cfg.server_lr or 1.0, **common)


ROBUST_ALIASES: tuple[str, ...] = ("median", "trimmed_mean", "krum", "multikrum", "bulyan")
"""``--strategy NAME`` shorthands for FedAvg with ``--aggregator NAME``."""


def effective_aggregator(cfg: RunConfig) -> str:
    """The aggregator name a config selects (``--aggregator``, or a robust ``--strategy`` alias)."""
    from fedloom.errors import ConfigError

    if cfg.strategy in ROBUST_ALIASES:
        if cfg.aggregator not in ("mean", cfg.strategy):
            raise ConfigError(
                f"--strategy {cfg.strategy} is FedAvg with --aggregator {cfg.strategy}; "
                f"it conflicts with --aggregator {cfg.aggregator}"
            )
        return cfg.strategy
    return cfg.aggregator


def _aggregator(cfg: RunConfig) -> Aggregator:
    return build_aggregator(
        effective_aggregator(cfg),
        trim_beta=cfg.trim_beta,
        byzantine_f=cfg.byzantine_f,
        multikrum_m=cfg.multikrum_m,
        clip_update_norm=cfg.clip_update_norm,
    )


STRATEGIES: dict[str, StrategyBuilder] = {
    "fedavg": _fedavg,
    "fedprox": _fedprox,
    "fedavgm": _fedavgm,
    "fedadam": _fedopt(FedAdam),
    "fedyogi": _fedopt(FedYogi),
    "fedadagrad": _fedopt(FedAdagrad),
    "scaffold": _scaffold,
    **{alias: _fedavg for alias in ROBUST_ALIASES},
}
"""Strategy names accepted by ``--strategy``."""


def build_strategy(cfg: RunConfig, common: dict) -> Strategy:
    """The strategy ``cfg.strategy`` names, with ``common`` keyword arguments.

    The aggregator (``--aggregator``, ``--clip-update-norm``) is added to ``common`` unless the
    caller already put one there, so robust aggregation composes with every strategy.
    """
    if "aggregator" not in common:
        common = {**common, "aggregator": _aggregator(cfg)}
    return STRATEGIES[cfg.strategy](cfg, common)


__all__ = [
    "AGGREGATORS",
    "ROBUST_ALIASES",
    "STRATEGIES",
    "Aggregator",
    "Bulyan",
    "CentralEvaluateFn",
    "CoordinateMedian",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedOpt",
    "FedProx",
    "FedYogi",
    "Krum",
    "MultiKrum",
    "NormBound",
    "Scaffold",
    "ServerOpt",
    "TrimmedMean",
    "build_aggregator",
    "effective_aggregator",
    "StrategyBuilder",
    "WeightedMean",
    "adagrad",
    "adam",
    "build_strategy",
    "chain",
    "momentum",
    "sgd",
    "yogi",
]
