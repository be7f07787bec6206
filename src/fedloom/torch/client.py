"""TorchClient: a federated client around your ``nn.Module``, data, loss and optimizer.

Example:
    >>> import torch
    >>> from torch import nn
    >>> x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    >>> client = TorchClient(model_fn=lambda: nn.Linear(4, 2), train_data=(x, y), lr=0.1)
    >>> res = client.fit(client.get_parameters({}), {"local_epochs": 1, "seed": 0})
    >>> res.num_examples
    32
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from fedloom.core.client import Client
from fedloom.core.client_state import ClientState
from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitRes
from fedloom.torch.params import load_parameters, module_parameters
from fedloom.torch.training import TensorData, as_tensor_data, evaluate_model, num_examples, train_epochs

__all__ = ["TorchClient", "OptimizerFn"]

OptimizerFn = Callable[[list[nn.Parameter], float], torch.optim.Optimizer]
"""Builds an optimizer from the model's parameters and a learning rate."""


def _sgd(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr)


class TorchClient(Client):
    """Train and evaluate a PyTorch model on local data, no training loop to write.

    The server may override ``local_epochs``, ``lr`` and ``batch_size`` per round through the
    task config. Override :meth:`fit` (calling :meth:`train` if useful) for anything else.

    Args:
        model_fn: Builds a fresh model (the same architecture on every client and the server).
        train_data: ``(x, y)`` tensors or arrays, a ``TensorDataset``, or a ``DataLoader``.
        test_data: Local held-out data for federated evaluation (optional).
        loss_fn: Defaults to cross-entropy for classification, MSE for regression.
        optimizer_fn: ``(params, lr) -> Optimizer``; defaults to plain SGD.
        local_epochs: Epochs of local training per round.
        batch_size: Minibatch size (ignored for a ``DataLoader``).
        lr: Learning rate.
        task: ``"classification"`` or ``"regression"``.
        device: Torch device to train on.
        state: Per-client state that persists across rounds (control variates, residuals). In
            simulation the factory passes the client's entry of a ``ClientStateStore``; a deployed
            client keeps its own dict.
    """

    def __init__(
        self,
        *,
        model_fn: Callable[[], nn.Module],
        train_data: object,
        test_data: object | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        optimizer_fn: OptimizerFn | None = None,
        local_epochs: int = 1,
        batch_size: int = 32,
        lr: float = 0.01,
        task: str = "classification",
        device: str | torch.device = "cpu",
        state: ClientState | None = None,
    ) -> None:
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        self.model_fn = model_fn
        self.train_data: TensorData | DataLoader = as_tensor_data(train_data)
        self.test_data = as_tensor_data(test_data) if test_data is not None else None
        self.task = task
        self.loss_fn = loss_fn or (nn.CrossEntropyLoss() if task == "classification" else _mse)
        self.optimizer_fn = optimizer_fn or _sgd
        self.local_epochs = local_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.device = torch.device(device)
        self.state: ClientState = state if state is not None else {}
        self._model: nn.Module | None = None

    @property
    def model(self) -> nn.Module:
        """The local model, built on first use."""
        if self._model is None:
            model = self.model_fn()
            # Module.to walks every submodule even when nothing moves; a reused model is already there.
            if any(t.device != self.device for t in (*model.parameters(), *model.buffers())):
                model = model.to(self.device)
            self._model = model
        return self._model

    def get_parameters(self, config: Config) -> Parameters:
        return module_parameters(self.model)

    def train(
        self,
        parameters: Parameters,
        config: Config,
        extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    ) -> float:
        """Load ``parameters`` and train per ``config``; returns the last epoch's mean loss."""
        model = self.model
        load_parameters(model, parameters)
        generator = torch.Generator().manual_seed(int(config.get("seed", 0)))
        lr = float(config.get("lr", self.lr))
        optimizer = self.optimizer_fn([p for p in model.parameters() if p.requires_grad], lr)
        return train_epochs(
            model,
            self.train_data,
            loss_fn=self.loss_fn,
            optimizer=optimizer,
            epochs=int(config.get("local_epochs", self.local_epochs)),
            batch_size=int(config.get("batch_size", self.batch_size)),
            generator=generator,
            extra_loss=extra_loss,
            device=self.device,
        )

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        loss = self.train(parameters, config)
        return FitRes(module_parameters(self.model), num_examples(self.train_data), {"train_loss": loss})

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        data = self.test_data if self.test_data is not None else self.train_data
        load_parameters(self.model, parameters)
        loss, n, metrics = evaluate_model(
            self.model, data, loss_fn=self.loss_fn, task=self.task, device=self.device
        )
        return EvaluateRes(loss, n, dict(metrics))


def _mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(output.reshape(target.shape), target)
