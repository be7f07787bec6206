"""The training section of a run: the model and each client's local training."""

from __future__ import annotations

from dataclasses import dataclass

from fedloom.core.options import need, option
from fedloom.core.registry import is_import_path
from fedloom.models import MODELS
from fedloom.torch.optimizers import OPTIMIZERS

__all__ = ["TrainingOptions", "OPTIMIZERS"]


@dataclass
class TrainingOptions:
    """``[training]``: model architecture and local training on each client."""

    model: str = option("mlp", "Model (or package.module:factory).", choices=lambda: MODELS)
    hidden: int = option(128, "Hidden units of the built-in mlp.")
    local_epochs: int = option(1, "Local epochs per round.")
    batch_size: int = option(16, "Local minibatch size.")
    lr: float = option(0.1, "Client learning rate.")
    optimizer: str = option("sgd", "Client optimizer.", choices=lambda: OPTIMIZERS)
    momentum: float = option(0.0, "SGD momentum of the client optimizer.")
    client_fn: str = option("", "Your own client instead of the built-in TorchClient: 'package.module:factory' "
                            "called with each client id ('0', '1', ...; in deployment the client's name) and, if it "
                            "takes them, num_clients and seed; it returns a Client (or any object with fit and "
                            "evaluate). The current directory is importable.")
    initial_parameters: str = option("", "The first global model from your code: 'package.module:factory' returning "
                                     "Parameters, a state_dict, an nn.Module or a list of arrays (default: the "
                                     "configured model; with client_fn, client 0's get_parameters).")

    def validate(self) -> None:
        """Raise :class:`~fedloom.errors.ConfigError` for an invalid value."""
        need(self.model in MODELS or ":" in self.model,
             f"unknown model {self.model!r}; choose one of: {MODELS.choices()}, or package.module:factory")
        OPTIMIZERS.get(self.optimizer)
        need(self.local_epochs >= 1, f"local_epochs must be >= 1, got {self.local_epochs}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.hidden >= 1, f"hidden must be >= 1, got {self.hidden}")
        need(self.momentum >= 0, f"momentum must be >= 0, got {self.momentum}")
        for key in ("client_fn", "initial_parameters"):
            value = getattr(self, key)
            need(not value or is_import_path(value), f"{key} must be 'package.module:factory', got {value!r}")
