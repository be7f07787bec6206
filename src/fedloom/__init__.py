"""fedloom: federated learning for PyTorch.

Simulate thousands of clients on one machine, deploy the same client and strategy code over
gRPC, and protect updates with secure aggregation, differential privacy and HE.

The public API is the protocols and entry points below; concrete implementations live in their
subpackages and are re-exported here for convenience. Names load on first use, so ``import
fedloom`` is cheap and a run imports only the features it uses.

Example:
    >>> from fedloom import RunConfig, run_simulation
    >>> result = run_simulation(RunConfig(dataset="iris", clients=3, rounds=2, progress=False))
    >>> result.final["accuracy"] > 0.5
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # -- protocols and core types
    "Client": "fedloom.core.client",
    "ClientFn": "fedloom.core.client",
    "ClientWrapper": "fedloom.core.client",
    "ClientId": "fedloom.core.types",
    "Config": "fedloom.core.types",
    "EvaluateIns": "fedloom.core.types",
    "EvaluateRes": "fedloom.core.types",
    "FitIns": "fedloom.core.types",
    "FitRes": "fedloom.core.types",
    "Metrics": "fedloom.core.types",
    "Parameters": "fedloom.core.parameters",
    "ClientStateStore": "fedloom.core.client_state",
    "Strategy": "fedloom.core.strategy",
    "ServerState": "fedloom.core.strategy",
    "Failure": "fedloom.core.strategy",
    "Aggregator": "fedloom.strategies.aggregators",
    "ServerOpt": "fedloom.core.server_opt",
    "LocalTrainer": "fedloom.core.trainer",
    "ClientPool": "fedloom.core.pool",
    "RoundObserver": "fedloom.engine.loop",
    "Codec": "fedloom.core.codec",
    "Registry": "fedloom.core.registry",
    # -- entry points
    "simulate": "fedloom.engine.simulate",
    "load_dataset": "fedloom.data",
    "partition": "fedloom.data",
    "RunConfig": "fedloom.app.config",
    "load_config": "fedloom.app.config",
    "build_simulation": "fedloom.app.build",
    "run_simulation": "fedloom.app.build",
    "FederatedLoop": "fedloom.engine.loop",
    "RoundRecord": "fedloom.engine.loop",
    "RunResult": "fedloom.engine.loop",
    "ConfigError": "fedloom.errors",
    "FedloomError": "fedloom.errors",
    "RoundFailedError": "fedloom.errors",
    "StopTraining": "fedloom.errors",
    "ValidationError": "fedloom.errors",
    # -- implementations, re-exported from their subpackages
    "FedAvg": "fedloom.strategies",
    "FedAvgM": "fedloom.strategies",
    "FedProx": "fedloom.strategies",
    "FedAdam": "fedloom.strategies",
    "FedYogi": "fedloom.strategies",
    "FedAdagrad": "fedloom.strategies",
    "Scaffold": "fedloom.strategies",
    "WeightedMean": "fedloom.strategies",
    "CoordinateMedian": "fedloom.strategies",
    "TrimmedMean": "fedloom.strategies",
    "Krum": "fedloom.strategies",
    "MultiKrum": "fedloom.strategies",
    "Bulyan": "fedloom.strategies",
    "NormBound": "fedloom.strategies",
    "TorchClient": "fedloom.torch",
    "ScaffoldClient": "fedloom.torch",
    "make_evaluate_fn": "fedloom.torch",
    "build_model": "fedloom.models",
    "CentralDP": "fedloom.privacy.dp",
    "LocalDPClient": "fedloom.privacy.dp",
    "DPSGD": "fedloom.privacy.opacus",
    "EpsilonObserver": "fedloom.privacy.accountant",
    "SecAggClient": "fedloom.privacy.secagg",
    "SecAggPool": "fedloom.privacy.secagg",
    "CompressedClient": "fedloom.compression",
    "Float16Codec": "fedloom.compression",
    "StochasticQuantizer": "fedloom.compression",
    "TopK": "fedloom.compression",
    "UpdateCodec": "fedloom.compression",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fedloom' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from fedloom.app.build import build_simulation, run_simulation
    from fedloom.app.config import RunConfig, load_config
    from fedloom.compression import CompressedClient, Float16Codec, StochasticQuantizer, TopK, UpdateCodec
    from fedloom.core.client import Client, ClientFn, ClientWrapper
    from fedloom.core.client_state import ClientStateStore
    from fedloom.core.codec import Codec
    from fedloom.core.parameters import Parameters
    from fedloom.core.pool import ClientPool
    from fedloom.core.registry import Registry
    from fedloom.core.server_opt import ServerOpt
    from fedloom.core.strategy import Failure, ServerState, Strategy
    from fedloom.core.trainer import LocalTrainer
    from fedloom.core.types import ClientId, Config, EvaluateIns, EvaluateRes, FitIns, FitRes, Metrics
    from fedloom.data import load_dataset, partition
    from fedloom.engine.loop import FederatedLoop, RoundObserver, RoundRecord, RunResult
    from fedloom.engine.simulate import simulate
    from fedloom.errors import ConfigError, FedloomError, RoundFailedError, StopTraining, ValidationError
    from fedloom.models import build_model
    from fedloom.privacy.accountant import EpsilonObserver
    from fedloom.privacy.dp import CentralDP, LocalDPClient
    from fedloom.privacy.opacus import DPSGD
    from fedloom.privacy.secagg import SecAggClient, SecAggPool
    from fedloom.strategies import (
        Aggregator,
        Bulyan,
        CoordinateMedian,
        FedAdagrad,
        FedAdam,
        FedAvg,
        FedAvgM,
        FedProx,
        FedYogi,
        Krum,
        MultiKrum,
        NormBound,
        Scaffold,
        TrimmedMean,
        WeightedMean,
    )
    from fedloom.torch import ScaffoldClient, TorchClient, make_evaluate_fn
