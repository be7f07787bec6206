"""fedloom: federated learning for PyTorch.

Simulate thousands of clients on one machine, deploy the same client and strategy code over
gRPC, and protect updates with secure aggregation, differential privacy and HE.

Example:
    >>> from fedloom import RunConfig, run_simulation
    >>> result = run_simulation(RunConfig(dataset="iris", clients=3, rounds=2, progress=False))
    >>> result.final["accuracy"] > 0.5
    True
"""

from fedloom.compression import CompressedClient, Float16Codec, StochasticQuantizer, TopK, UpdateCodec
from fedloom.config import RunConfig, load_config
from fedloom.core import (
    Client,
    ClientFn,
    ClientId,
    ClientStateStore,
    ClientWrapper,
    Config,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Metrics,
    Parameters,
)
from fedloom.core.strategy import Failure, ServerState, Strategy
from fedloom.data import load_dataset, partition
from fedloom.engine import FederatedLoop, RoundRecord, RunResult
from fedloom.errors import ConfigError, FedloomError, RoundFailedError, StopTraining, ValidationError
from fedloom.models import build_model
from fedloom.privacy import DPSGD, CentralDP, EpsilonObserver, LocalDPClient, SecAggClient, SecAggPool
from fedloom.simulation import build_simulation, run_simulation, simulate
from fedloom.strategies import (
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

__version__ = "0.1.0"

__all__ = [
    "Bulyan",
    "CentralDP",
    "Client",
    "ClientFn",
    "ClientId",
    "ClientStateStore",
    "ClientWrapper",
    "CompressedClient",
    "Config",
    "ConfigError",
    "CoordinateMedian",
    "DPSGD",
    "EpsilonObserver",
    "EvaluateIns",
    "EvaluateRes",
    "Failure",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "FedYogi",
    "FederatedLoop",
    "FedloomError",
    "FitIns",
    "FitRes",
    "Float16Codec",
    "Krum",
    "LocalDPClient",
    "Metrics",
    "MultiKrum",
    "NormBound",
    "Parameters",
    "RoundFailedError",
    "RoundRecord",
    "RunConfig",
    "RunResult",
    "Scaffold",
    "ScaffoldClient",
    "SecAggClient",
    "SecAggPool",
    "ServerState",
    "StochasticQuantizer",
    "StopTraining",
    "Strategy",
    "TopK",
    "TorchClient",
    "TrimmedMean",
    "UpdateCodec",
    "ValidationError",
    "WeightedMean",
    "build_model",
    "build_simulation",
    "load_config",
    "load_dataset",
    "make_evaluate_fn",
    "partition",
    "run_simulation",
    "simulate",
    "__version__",
]
