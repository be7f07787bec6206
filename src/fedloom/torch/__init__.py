"""PyTorch glue: TorchClient, local training loops, module <-> Parameters."""

from fedloom.torch.client import OptimizerFn, TorchClient, default_loss, make_evaluate_fn
from fedloom.torch.params import load_parameters, module_parameters
from fedloom.torch.scaffold import ScaffoldClient
from fedloom.torch.training import TensorData, evaluate_model, train_epochs

__all__ = [
    "OptimizerFn",
    "ScaffoldClient",
    "TensorData",
    "TorchClient",
    "default_loss",
    "evaluate_model",
    "load_parameters",
    "make_evaluate_fn",
    "module_parameters",
    "train_epochs",
]
