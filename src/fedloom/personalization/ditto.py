"""Ditto: each client keeps a personal model ``v``, trained on its data and pulled towards the global model.

Paper: Tian Li, Shengyuan Hu, Ahmad Beirami, Virginia Smith, "Ditto: Fair and Robust Federated
Learning Through Personalization", ICML 2021, arXiv:2012.04221.

The global model is trained exactly as without Ditto (the strategy's local trainer; the update
is what is sent). Then the personal model solves ``F_k(v) + lambda/2 ||v - w||^2`` for the task's
local epochs, with ``w`` the global model received, by proximal SGD: an SGD step on ``F_k``, then the
exact proximal step of the regularizer, ``v <- (v + lr*lambda*w) / (1 + lr*lambda)``, which is
stable for any ``lambda``: ``lambda = 0`` is purely local training and a huge ``lambda`` returns
``w``. ``v`` starts as the first global model the client receives and lives in the client's state
(checkpointed with it); it never leaves the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch

from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes
from fedloom.errors import ConfigError
from fedloom.personalization.base import personal_metrics
from fedloom.torch.params import module_parameters
from fedloom.torch.trainers import task_generator, task_optimizer
from fedloom.torch.training import train_epochs

if TYPE_CHECKING:
    from fedloom.personalization.client import PersonalClient

__all__ = ["build", "Ditto", "PERSONAL_MODEL"]

PERSONAL_MODEL = "ditto_personal"
"""Client-state entry holding Ditto's personal model."""


class Ditto:
    """Ditto's client: the global model's update as usual, and a personal model regularized by ``lam``."""

    name = "ditto"

    def __init__(self, lam: float = 1.0) -> None:
        if not lam >= 0:
            raise ConfigError(f"ditto lambda must be >= 0, got {lam}")
        self.lam = float(lam)

    def shared(self, names: Sequence[str]) -> list[str]:
        return list(names)

    def fit(self, client: PersonalClient, ins: FitIns) -> FitRes:
        res = client.plain_fit(ins)  # the global model's update: what is sent
        client.load(client.state.get(PERSONAL_MODEL) or ins.parameters)
        self.train_personal(client, ins.parameters, ins.config)
        client.state[PERSONAL_MODEL] = module_parameters(client.model)
        return res

    def train_personal(self, client: PersonalClient, anchor: Parameters, config: Config) -> float:
        """The task's local epochs of proximal SGD on the loaded personal model, towards ``anchor``."""
        ctx = client.context()
        optimizer = task_optimizer(ctx, config)
        if self.lam > 0:
            step = _ProximalStep(optimizer, client, anchor, ctx.lr_for(config) * self.lam)
            optimizer = cast(torch.optim.Optimizer, step)
        return train_epochs(ctx.model, ctx.train_data, loss_fn=ctx.loss_fn, optimizer=optimizer,
                            epochs=ctx.epochs_for(config), batch_size=ctx.batch_size_for(config),
                            generator=task_generator(config), device=ctx.device)

    def evaluate(self, client: PersonalClient, parameters: Parameters, config: Config) -> EvaluateRes:
        glob = client.plain_evaluate(parameters, config)
        personal = client.state.get(PERSONAL_MODEL)
        if personal is None:  # never trained: its personal model is the global one
            same = personal_metrics(glob.loss, glob.metrics)
            return EvaluateRes(glob.loss, glob.num_examples, {**glob.metrics, **same})
        client.load(personal)
        loss, _, metrics = client.evaluate_loaded()
        return EvaluateRes(glob.loss, glob.num_examples, {**glob.metrics, **personal_metrics(loss, metrics)})

    def __repr__(self) -> str:
        return f"Ditto(lam={self.lam})"


class _ProximalStep:
    """An optimizer whose every step is followed by ``v <- (v + c*w) / (1 + c)`` (``c = lr * lambda``)."""

    def __init__(self, inner: torch.optim.Optimizer, client: PersonalClient, anchor: Parameters, c: float) -> None:
        self.inner = inner
        device = client.device
        named = dict(client.model.named_parameters())
        self.pairs = [(p, torch.as_tensor(anchor[n], device=device).to(p.dtype)) for n, p in named.items()
                      if p.requires_grad and n in anchor]
        self.c = c

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        self.inner.step()
        for p, w in self.pairs:
            p.add_(w, alpha=self.c).div_(1.0 + self.c)


def build(options: Any) -> Ditto:
    """The method from a run's :class:`~fedloom.personalization.options.PersonalizationOptions`."""
    return Ditto(options.ditto_lambda)
