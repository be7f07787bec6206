"""fedloom: federated learning for PyTorch.

Simulate thousands of clients on one machine, deploy the same client and strategy code over
gRPC, and protect updates with secure aggregation, differential privacy and HE.

Example:
    >>> from fedloom import RunConfig, run_simulation
    >>> result = run_simulation(RunConfig(dataset="iris", clients=3, rounds=2, progress=False))
    >>> result.final["accuracy"] > 0.5
    True
"""

from fedloom.config import RunConfig, load_config
from fedloom.core import (
    Client,
    ClientFn,
    ClientId,
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
from fedloom.simulation import build_simulation, run_simulation, simulate
from fedloom.strategies import FedAvg, WeightedMean
from fedloom.torch import TorchClient

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ClientFn",
    "ClientId",
    "Config",
    "ConfigError",
    "EvaluateIns",
    "EvaluateRes",
    "Failure",
    "FedAvg",
    "FederatedLoop",
    "FedloomError",
    "FitIns",
    "FitRes",
    "Metrics",
    "Parameters",
    "RoundFailedError",
    "RoundRecord",
    "RunConfig",
    "RunResult",
    "ServerState",
    "StopTraining",
    "Strategy",
    "TorchClient",
    "ValidationError",
    "WeightedMean",
    "__version__",
    "build_model",
    "build_simulation",
    "load_config",
    "load_dataset",
    "partition",
    "run_simulation",
    "simulate",
]

# -- strategy library (issue 3) -------------------------------------------------------------------
from fedloom.strategies import (  # noqa: E402
    Bulyan,
    CoordinateMedian,
    FedAdagrad,
    FedAdam,
    FedAvgM,
    FedProx,
    FedYogi,
    Krum,
    MultiKrum,
    NormBound,
    Scaffold,
    TrimmedMean,
)
from fedloom.torch import ScaffoldClient  # noqa: E402

__all__ += [
    "Bulyan",
    "CoordinateMedian",
    "FedAdagrad",
    "FedAdam",
    "FedAvgM",
    "FedProx",
    "FedYogi",
    "Krum",
    "MultiKrum",
    "NormBound",
    "Scaffold",
    "ScaffoldClient",
    "TrimmedMean",
]
