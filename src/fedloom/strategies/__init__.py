"""Strategy implementations (one module per family) and the registry used by ``--strategy``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.registry import call_with_accepted, is_import_path
from fedloom.core.server_opt import ServerOpt, chain
from fedloom.core.strategy import Strategy
from fedloom.errors import ConfigError
from fedloom.strategies.aggregators import Aggregator, WeightedMean
from fedloom.strategies.fedavg import CentralEvaluateFn, FedAvg
from fedloom.strategies.fedopt import FedAdagrad, FedAdam, FedAvgM, FedOpt, FedYogi
from fedloom.strategies.fedprox import FedProx
from fedloom.strategies.registry import AGGREGATORS, ROBUST_ALIASES, SERVER_OPTS, STRATEGIES, StrategyBuilder
from fedloom.strategies.robust import (
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
    from fedloom.strategies.options import StrategyOptions


def options_aggregator(options: StrategyOptions) -> Aggregator:
    """The aggregator an options section selects (``--aggregator`` or a robust ``--strategy`` alias,
    wrapped in norm bounding with ``--clip-update-norm``)."""
    return build_aggregator(
        options.effective_aggregator(),
        trim_beta=options.trim_beta,
        byzantine_f=options.byzantine_f,
        multikrum_m=options.multikrum_m,
        clip_update_norm=options.clip_update_norm,
    )


def build_strategy(options: StrategyOptions, common: dict) -> Strategy:
    """The strategy ``options.strategy`` names, with ``common`` keyword arguments.

    The aggregator (``--aggregator``, ``--clip-update-norm``) and the caps on one client's weight
    and update norm (``--max-weight-ratio``, ``--max-norm-ratio``) are added to ``common`` unless the
    caller already put them there, so robust aggregation composes with every strategy.

    ``options.strategy`` may name your own code, ``"package.module:factory"``: a
    :class:`~fedloom.core.strategy.Strategy` instance is used as is; a class or function is called
    with the keyword arguments of ``common`` it accepts (all of them with ``**kwargs``), so a
    subclass of :class:`FedAvg` gets the configured sampling, fit config, central evaluation and
    aggregator.
    """
    name = options.strategy
    if "aggregator" not in common:
        common = {**common, "aggregator": options_aggregator(options)}
    common = {"max_weight_ratio": options.max_weight_ratio, "max_norm_ratio": options.max_norm_ratio, **common}
    if options.server_opt and "server_opt" not in common:
        common = {**common, "server_opt": SERVER_OPTS.get(options.server_opt)(options)}
    if is_import_path(name) and name not in STRATEGIES.names():
        return _own_strategy(name, common)
    return STRATEGIES.get(name)(options, common)


def _own_strategy(spec: str, common: dict) -> Strategy:
    obj = STRATEGIES.get(spec)
    if not isinstance(obj, Strategy):
        if not callable(obj):
            raise ConfigError(f"strategy {spec!r} is a {type(obj).__name__}, not a Strategy, class or factory")
        obj = call_with_accepted(obj, **common)
    if not isinstance(obj, Strategy):
        raise ConfigError(f"strategy {spec!r} made a {type(obj).__name__}, not a fedloom Strategy (subclass "
                          "fedloom.strategies.FedAvg or fedloom.core.strategy.Strategy)")
    return obj


__all__ = [
    "AGGREGATORS",
    "SERVER_OPTS",
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
    "options_aggregator",
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
