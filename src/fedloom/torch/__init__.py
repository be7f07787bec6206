"""PyTorch glue: TorchClient, local training loops, module <-> Parameters.

Names load on first use (the package itself imports nothing heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedloom.core.lazy import lazy_exports

if TYPE_CHECKING:
    from fedloom.torch.client import OptimizerFn, TorchClient, default_loss, make_evaluate_fn
    from fedloom.torch.params import load_parameters, module_parameters
    from fedloom.torch.scaffold import ScaffoldClient
    from fedloom.torch.training import TensorData, evaluate_model, train_epochs

_EXPORTS = {
    "OptimizerFn": "fedloom.torch.client",
    "TorchClient": "fedloom.torch.client",
    "default_loss": "fedloom.torch.client",
    "make_evaluate_fn": "fedloom.torch.client",
    "load_parameters": "fedloom.torch.params",
    "module_parameters": "fedloom.torch.params",
    "ScaffoldClient": "fedloom.torch.scaffold",
    "TensorData": "fedloom.torch.training",
    "evaluate_model": "fedloom.torch.training",
    "train_epochs": "fedloom.torch.training",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
