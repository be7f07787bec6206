"""PyTorch glue: TorchClient, its local trainers, local training loops, module <-> Parameters."""

from fedloom.torch.client import OptimizerFn, TorchClient, default_loss, make_evaluate_fn
from fedloom.torch.params import load_parameters, module_parameters
from fedloom.torch.scaffold import ScaffoldClient, ScaffoldTrainer
from fedloom.torch.trainers import AutoTrainer, EpochTrainer, ProximalTrainer
from fedloom.torch.training import TensorData, evaluate_model, train_epochs

__all__ = [
    "AutoTrainer",
    "EpochTrainer",
    "OptimizerFn",
    "ProximalTrainer",
    "ScaffoldClient",
    "ScaffoldTrainer",
    "TensorData",
    "TorchClient",
    "default_loss",
    "evaluate_model",
    "load_parameters",
    "make_evaluate_fn",
    "module_parameters",
    "train_epochs",
]
