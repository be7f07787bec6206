"""PyTorch glue: TorchClient, its local trainers, local training loops, module <-> Parameters.

Names load on first use (the package itself imports nothing heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.torch.auto import AutoTrainer
    from fedloom.torch.client import OptimizerFn, ScaffoldClient, TorchClient, default_loss, make_evaluate_fn
    from fedloom.torch.params import load_parameters, module_parameters
    from fedloom.torch.scaffold import ScaffoldTrainer
    from fedloom.torch.trainers import EpochTrainer, ProximalTrainer
    from fedloom.torch.training import TensorData, evaluate_model, train_epochs

_EXPORTS = {
    "OptimizerFn": "fedloom.torch.client",
    "TorchClient": "fedloom.torch.client",
    "default_loss": "fedloom.torch.client",
    "make_evaluate_fn": "fedloom.torch.client",
    "load_parameters": "fedloom.torch.params",
    "module_parameters": "fedloom.torch.params",
    "ScaffoldClient": "fedloom.torch.client",
    "ScaffoldTrainer": "fedloom.torch.scaffold",
    "AutoTrainer": "fedloom.torch.auto",
    "EpochTrainer": "fedloom.torch.trainers",
    "ProximalTrainer": "fedloom.torch.trainers",
    "TensorData": "fedloom.torch.training",
    "evaluate_model": "fedloom.torch.training",
    "train_epochs": "fedloom.torch.training",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
