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
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from fedloom.core.client import Client
from fedloom.core.client_state import ClientState
from fedloom.core.parameters import Parameters
from fedloom.core.trainer import LocalTrainer, TrainContext, TrainOutcome, trainer_for_task
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes
from fedloom.errors import ConfigError
from fedloom.torch.auto import AutoTrainer
from fedloom.torch.params import load_parameters, module_parameters
from fedloom.torch.scaffold import ScaffoldTrainer
from fedloom.torch.training import TensorData, as_tensor_data, evaluate_model, num_examples

if TYPE_CHECKING:
    from fedloom.privacy.opacus import DPSGD

__all__ = ["TorchClient", "ScaffoldClient", "OptimizerFn", "make_evaluate_fn", "default_loss"]

OptimizerFn = Callable[[list[nn.Parameter], float], torch.optim.Optimizer]
"""Builds an optimizer from the model's parameters and a learning rate."""


def _sgd(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr)


class TorchClient(Client):
    """Train and evaluate a PyTorch model on local data, no training loop to write.

    The server may override ``local_epochs``, ``lr`` and ``batch_size`` per round through the
    task config. What local training does is the client's ``trainer``
    (:class:`~fedloom.core.trainer.LocalTrainer`): give one for anything else than the default.
    For every task the client loads the global parameters into its model, runs the trainer, and
    returns the model's parameters with ``train_loss``, the trainer's metrics and its extras.

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
        dp_sgd: Sample-level DP-SGD through Opacus (:class:`fedloom.privacy.opacus.DPSGD`); the
            same as ``trainer=DPSGDTrainer(dp_sgd)``.
        trainer: The client half of the algorithm (:data:`fedloom.core.trainer.TRAINERS`). The
            default, :class:`~fedloom.torch.auto.AutoTrainer`, runs plain epochs, FedProx's
            proximal term when the task config has ``proximal_mu > 0``, and SCAFFOLD's correction
            when the task carries ``extras["scaffold_c"]``.
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
        dp_sgd: DPSGD | None = None,
        trainer: LocalTrainer | None = None,
    ) -> None:
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if trainer is not None and dp_sgd is not None:
            raise ConfigError("give TorchClient either dp_sgd= or trainer= (e.g. trainer=DPSGDTrainer(settings)), "
                              "not both")
        if trainer is not None and not callable(getattr(trainer, "train", None)):
            raise ConfigError(f"trainer {trainer!r} has no train(ctx, ins) method (see fedloom.core.trainer)")
        self.model_fn = model_fn
        self.train_data: TensorData | DataLoader = as_tensor_data(train_data)
        self.test_data = as_tensor_data(test_data) if test_data is not None else None
        self.task = task
        self.loss_fn = loss_fn or default_loss(task)
        self.optimizer_fn = optimizer_fn or _sgd
        self.local_epochs = local_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.device = torch.device(device)
        self.state: ClientState = state if state is not None else {}
        self._model: nn.Module | None = None
        if dp_sgd is not None:  # privacy: sample-level DP-SGD through Opacus
            from fedloom.privacy.opacus import DPSGDTrainer

            trainer = DPSGDTrainer(dp_sgd)
        self.trainer: LocalTrainer = trainer if trainer is not None else AutoTrainer()

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

    def trainer_for(self, ins: FitIns) -> LocalTrainer:
        """The trainer that runs ``ins`` (the ``auto`` default chooses per task)."""
        return trainer_for_task(self.trainer, ins)

    def context(self) -> TrainContext:
        """This client's pieces, as its trainer sees them."""
        return TrainContext(
            model=self.model,
            train_data=self.train_data,
            loss_fn=self.loss_fn,
            optimizer_fn=self.optimizer_fn,
            device=self.device,
            local_epochs=self.local_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            task=self.task,
            state=self.state,
        )

    def train_task(self, ins: FitIns) -> TrainOutcome:
        """Load the task's parameters into the model and run the trainer on it."""
        model = self.model
        load_parameters(model, ins.parameters)
        model.train()  # an evaluation left the (shared) module in eval mode; Opacus refuses one
        return self.trainer.train(self.context(), ins)

    def train(self, parameters: Parameters, config: Config) -> float:
        """Load ``parameters`` and train per ``config``; returns the last epoch's mean loss."""
        return self.train_task(FitIns(parameters, config)).loss

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return self.fit_task(FitIns(parameters, config))

    def fit_task(self, ins: FitIns) -> FitRes:
        before = {}
        if ins.config.get("report_initial_loss"):  # q-FedAvg weighs each update by the loss it starts from
            load_parameters(self.model, ins.parameters)
            before = self.initial_loss_metrics(ins)
        outcome = self.train_task(ins)
        return FitRes(module_parameters(self.model), num_examples(self.train_data),
                      {"train_loss": outcome.loss, **outcome.metrics, **before}, dict(outcome.extras))

    def initial_loss_metrics(self, ins: FitIns) -> dict[str, float]:
        """``{"initial_loss": ...}``: the loaded model's mean loss on the training data, when the task's
        config asks for it (``report_initial_loss``, sent by q-FedAvg); else empty."""
        if not ins.config.get("report_initial_loss"):
            return {}
        loss, _, _ = evaluate_model(self.model, self.train_data, loss_fn=self.loss_fn, task=self.task,
                                    device=self.device)
        return {"initial_loss": float(loss)}

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        data = self.test_data if self.test_data is not None else self.train_data
        load_parameters(self.model, parameters)
        loss, n, metrics = evaluate_model(
            self.model, data, loss_fn=self.loss_fn, task=self.task, device=self.device
        )
        return EvaluateRes(loss, n, dict(metrics))


def _mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(output.reshape(target.shape), target)


def default_loss(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy for classification, mean squared error for regression."""
    return nn.CrossEntropyLoss() if task == "classification" else _mse


def make_evaluate_fn(
    model_fn: Callable[[], nn.Module],
    test_data: object,
    *,
    task: str = "classification",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Callable[[Parameters], EvaluateRes]:
    """Central evaluation for a strategy's ``evaluate_fn``: global parameters on server-held data.

    Example:
        >>> fn = make_evaluate_fn(lambda: nn.Linear(4, 2), (torch.randn(8, 4), torch.zeros(8, dtype=torch.long)))
        >>> fn(module_parameters(nn.Linear(4, 2))).num_examples
        8
    """
    model = model_fn()
    data = as_tensor_data(test_data)
    loss = loss_fn or default_loss(task)

    def evaluate(parameters: Parameters) -> EvaluateRes:
        load_parameters(model, parameters)
        value, n, metrics = evaluate_model(model, data, loss_fn=loss, task=task)
        return EvaluateRes(value, n, dict(metrics))

    return evaluate


class ScaffoldClient(TorchClient):
    """A :class:`TorchClient` that always runs :class:`ScaffoldTrainer` (same constructor).

    Kept for existing code: ``TorchClient(..., trainer=ScaffoldTrainer())`` is the same client.
    DP-SGD cannot be combined with it: Opacus trains on clipped, noised per-example gradients of
    the data loss only, so SCAFFOLD's correction would be dropped.
    """

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("dp_sgd") is not None:
            raise ConfigError(
                "SCAFFOLD cannot run with DP-SGD: Opacus trains on clipped, noised per-example gradients of "
                "the data loss, which drops SCAFFOLD's control-variate correction"
            )
        if kwargs.get("trainer") is None:
            kwargs["trainer"] = ScaffoldTrainer()
        super().__init__(**kwargs)
