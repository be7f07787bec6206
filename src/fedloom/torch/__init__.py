"""PyTorch glue: TorchClient, local training loops, module <-> Parameters."""

from fedloom.torch.client import OptimizerFn, TorchClient
from fedloom.torch.params import load_parameters, module_parameters
from fedloom.torch.scaffold import ScaffoldClient
from fedloom.torch.training import TensorData, evaluate_model, train_epochs

__all__ = [
    "OptimizerFn",
    "ScaffoldClient",
    "TensorData",
    "TorchClient",
    "evaluate_model",
    "load_parameters",
    "module_parameters",
    "train_epochs",
]
