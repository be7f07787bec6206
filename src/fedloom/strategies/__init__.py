"""Strategy implementations (one module per family) and the registry used by ``--strategy``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fedloom.core.strategy import Strategy
from fedloom.strategies.aggregators import Aggregator, WeightedMean
from fedloom.strategies.fedavg import CentralEvaluateFn, FedAvg

if TYPE_CHECKING:
    from fedloom.config import RunConfig

StrategyBuilder = Callable[["RunConfig", dict], Strategy]
"""Builds a strategy from the run config and common keyword arguments (sampling, evaluation)."""


def _fedavg(cfg: RunConfig, common: dict) -> Strategy:
    return FedAvg(**common)


STRATEGIES: dict[str, StrategyBuilder] = {
    "fedavg": _fedavg,
}
"""Strategy names accepted by ``--strategy``."""


def build_strategy(cfg: RunConfig, common: dict) -> Strategy:
    """The strategy ``cfg.strategy`` names, with ``common`` keyword arguments."""
    return STRATEGIES[cfg.strategy](cfg, common)


__all__ = [
    "STRATEGIES",
    "Aggregator",
    "CentralEvaluateFn",
    "FedAvg",
    "StrategyBuilder",
    "WeightedMean",
    "build_strategy",
]
