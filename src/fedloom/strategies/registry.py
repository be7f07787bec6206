"""The strategy-side registries: strategies (``--strategy``) and aggregators (``--aggregator``).

A strategy entry is a builder ``(options: StrategyOptions, common: dict) -> Strategy``, where
``common`` holds the keyword arguments every FedAvg-family strategy takes (sampling, weighting,
fit config, central evaluation, aggregator). An aggregator entry is a factory
``(*, trim_beta, byzantine_f, multikrum_m) -> Aggregator``. A server optimizer entry is a factory
``(options: StrategyOptions) -> ServerOpt`` reading its hyperparameters from the options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedloom.core.registry import Registry

__all__ = ["AGGREGATORS", "SERVER_OPTS", "STRATEGIES", "StrategyBuilder", "ROBUST_ALIASES"]

StrategyBuilder = Callable[[Any, dict], Any]
"""``(StrategyOptions, common kwargs) -> Strategy``."""

_STRATEGY_MODULES = ["fedloom.strategies.fedavg", "fedloom.strategies.fedprox", "fedloom.strategies.fedopt",
                     "fedloom.strategies.scaffold", "fedloom.strategies.robust", "fedloom.strategies.qfedavg"]

STRATEGIES: Registry[StrategyBuilder] = Registry("strategy", modules=_STRATEGY_MODULES, package="fedloom.strategies",
                                              plural="strategies")

# Gradient-boosted trees (--model xgboost; fedloom.trees, loaded on first use: it needs the xgboost extra).
STRATEGIES.register_lazy("xgb-bagging", "fedloom.trees.strategies:build_bagging",
                         help="XGBoost tree bagging: every client adds trees each round, the server appends them.")
STRATEGIES.register_lazy("xgb-cyclic", "fedloom.trees.strategies:build_cyclic",
                         help="XGBoost cyclic training: one client a round, in turn, adds its trees.")
STRATEGIES.register_lazy("xgb-histogram", "fedloom.trees.strategies:build_histogram",
                         help="Histogram-based federated XGBoost: the server sums gradient histograms and grows "
                              "trees equal to XGBoost hist on the pooled data.")

AGGREGATORS: Registry[Callable[..., Any]] = Registry(
    "aggregator", modules=["fedloom.strategies.aggregators", "fedloom.strategies.robust"], package="fedloom.strategies"
)

SERVER_OPTS: Registry[Callable[..., Any]] = Registry("server optimizer", modules=["fedloom.strategies.server_opts"],
                                                  package="fedloom.strategies", plural="server_opts")
"""Server optimizers by name (``--server-opt``): ``(options: StrategyOptions) -> ServerOpt``."""

ROBUST_ALIASES: tuple[str, ...] = ("median", "trimmed_mean", "krum", "multikrum", "bulyan")
"""``--strategy NAME`` shorthands for FedAvg with ``--aggregator NAME``."""
