"""Local trainers for :class:`~fedloom.TorchClient`: plain epochs, FedProx, and the per-task default.

See :mod:`fedloom.core.trainer` for the protocol. SCAFFOLD's trainer lives in
:mod:`fedloom.torch.scaffold`, DP-SGD's in :mod:`fedloom.privacy.opacus`, the label-flip attack's
in :mod:`fedloom.scenarios.attacks`.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from fedloom.torch import TorchClient
    >>> x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    >>> client = TorchClient(model_fn=lambda: nn.Linear(3, 2), train_data=(x, y), trainer=ProximalTrainer(mu=0.1))
    >>> res = client.fit(client.get_parameters({}), {"seed": 0})
    >>> sorted(res.metrics)
    ['train_loss']
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fedloom.core.trainer import TRAINERS, TrainContext, TrainOutcome
from fedloom.core.types import Config, FitIns
from fedloom.errors import ConfigError
from fedloom.torch.training import train_epochs

__all__ = [
    "EpochTrainer",
    "ProximalTrainer",
    "proximal_term",
    "run_epochs",
    "task_generator",
    "task_optimizer",
]

ExtraLoss = Callable[[nn.Module], torch.Tensor]
"""A term added to each batch's loss, computed from the model (its gradient joins the data loss')."""


def task_generator(config: Config) -> torch.Generator:
    """The generator of a task: seeded with its ``seed``; it orders batches (and seeds DP noise)."""
    return torch.Generator().manual_seed(TrainContext.seed_for(config))


def task_optimizer(ctx: TrainContext, config: Config) -> torch.optim.Optimizer:
    """The client's optimizer over the model's trainable parameters, at the task's learning rate."""
    return ctx.optimizer_fn([p for p in ctx.model.parameters() if p.requires_grad], ctx.lr_for(config))


def run_epochs(ctx: TrainContext, config: Config, extra_loss: ExtraLoss | None = None) -> float:
    """The task's local epochs of ``ctx.loss_fn`` (plus ``extra_loss``); returns the last epoch's mean loss."""
    generator = task_generator(config)
    optimizer = task_optimizer(ctx, config)
    return train_epochs(
        ctx.model,
        ctx.train_data,
        loss_fn=ctx.loss_fn,
        optimizer=optimizer,
        epochs=ctx.epochs_for(config),
        batch_size=ctx.batch_size_for(config),
        generator=generator,
        extra_loss=extra_loss,
        device=ctx.device,
    )


def proximal_term(model: nn.Module, mu: float, extra_loss: ExtraLoss | None = None) -> ExtraLoss:
    """FedProx's ``mu/2 ||w - w_global||^2`` around the parameters ``model`` holds now (plus ``extra_loss``)."""
    anchors = [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]

    def loss(m: nn.Module) -> torch.Tensor:
        prox = 0.5 * mu * torch.stack([((p - a) ** 2).sum() for p, a in anchors]).sum()
        return prox if extra_loss is None else prox + extra_loss(m)

    return loss


def config_mu(config: Config) -> float:
    """The proximal coefficient a task asks for (``proximal_mu``; 0 when absent)."""
    return float(config.get("proximal_mu", 0.0))


@TRAINERS.register("epochs")
class EpochTrainer:
    """Plain local epochs of minibatch training on the client's loss (FedAvg's client)."""

    vectorizable: bool = True

    def train(self, ctx: TrainContext, ins: FitIns) -> TrainOutcome:
        return TrainOutcome(run_epochs(ctx, ins.config))

    def __repr__(self) -> str:
        return "EpochTrainer()"


@TRAINERS.register("fedprox")
class ProximalTrainer:
    """FedProx's client: local epochs on the loss plus mu/2 ||w - w_global||^2.

    Paper: Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020,
    arXiv:1812.06127 (the server half is :class:`fedloom.strategies.FedProx`).

    Args:
        mu: The proximal coefficient; ``None`` (default) reads the task config's ``proximal_mu``
            (which :class:`~fedloom.strategies.FedProx` sends), 0 when absent.
    """

    vectorizable: bool = False

    def __init__(self, mu: float | None = None) -> None:
        if mu is not None and not mu >= 0:
            raise ConfigError(f"proximal mu must be >= 0, got {mu}")
        self.mu = mu

    def train(self, ctx: TrainContext, ins: FitIns) -> TrainOutcome:
        mu = self.mu if self.mu is not None else config_mu(ins.config)
        extra = proximal_term(ctx.model, mu) if mu > 0 else None
        return TrainOutcome(run_epochs(ctx, ins.config, extra))

    def __repr__(self) -> str:
        return f"ProximalTrainer(mu={self.mu})"
