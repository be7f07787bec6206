"""APFL: each client mixes a local model ``v`` with the global model, ``vbar = alpha v + (1 - alpha) w``.

Paper: Yuyang Deng, Mohammad Mahdi Kamani, Mehrdad Mahdavi, "Adaptive Personalized Federated
Learning", arXiv:2003.13461 (2020), Algorithm 1.

Every local step on a batch: the global copy takes an SGD step on the client's loss
(``w <- w - lr grad f(w)``: exactly FedAvg's client, and ``w`` is what is sent); the local model takes
a step on the loss of the mixture (``v <- v - lr alpha grad f(vbar)``); and, with ``adapt``, the
mixing weight follows its gradient (``alpha <- alpha - lr <v - w, grad f(vbar)>``, kept in [0, 1]).
``v`` (starting as the first global model received) and ``alpha`` live in the client's state. The
personalized model evaluated is ``alpha v + (1 - alpha) w`` with the global model received.
``alpha = 1`` fixed is purely local training, ``alpha = 0`` the global model (both tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fedloom.core.parameters import Parameters
from fedloom.core.types import Config, EvaluateRes, FitIns, FitRes
from fedloom.errors import ConfigError
from fedloom.personalization.base import personal_metrics
from fedloom.torch.params import module_parameters
from fedloom.torch.trainers import task_generator, task_optimizer
from fedloom.torch.training import TensorData, num_examples

if TYPE_CHECKING:
    from fedloom.personalization.client import PersonalClient

__all__ = ["build", "APFL", "LOCAL_MODEL", "ALPHA"]

LOCAL_MODEL = "apfl_local"
"""Client-state entry holding APFL's local model ``v``."""
ALPHA = "apfl_alpha"
"""Client-state entry holding the client's mixing weight (``{"alpha": array}``)."""


class APFL:
    """APFL's client (see the module docstring): ``alpha`` is the initial mixing weight, learned when ``adapt``."""

    name = "apfl"

    def __init__(self, alpha: float = 0.5, adapt: bool = True) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"apfl alpha must be in [0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.adapt = adapt

    def shared(self, names: Sequence[str]) -> list[str]:
        return list(names)

    def alpha_of(self, client: PersonalClient) -> float:
        """The client's current mixing weight."""
        stored = client.state.get(ALPHA)
        return float(stored["alpha"].reshape(-1)[0]) if stored is not None else self.alpha

    def fit(self, client: PersonalClient, ins: FitIns) -> FitRes:
        from torch.func import functional_call

        client.load(ins.parameters)
        model = client.model
        model.train()
        before = client.initial_loss_metrics(ins)
        ctx, config = client.context(), ins.config
        lr = ctx.lr_for(config)
        params = dict(model.named_parameters())
        start = client.state.get(LOCAL_MODEL) or ins.parameters
        v = {n: torch.as_tensor(np.asarray(start[n]), device=client.device).to(p.dtype) for n, p in params.items()}
        buffers = dict(model.named_buffers())
        alpha = self.alpha_of(client)
        optimizer = task_optimizer(ctx, config)
        generator = task_generator(config)
        last = 0.0
        for _ in range(ctx.epochs_for(config)):
            total, count = 0.0, 0
            data = ctx.train_data
            batches = data.batches(ctx.batch_size_for(config), generator) if isinstance(data, TensorData) else data
            for xb, yb in batches:
                xb, yb = xb.to(ctx.device), yb.to(ctx.device)
                w_now = {n: p.detach().clone() for n, p in params.items()}
                vbar = {n: (alpha * v[n] + (1 - alpha) * w_now[n]).requires_grad_(True) for n in params}
                mixed_loss = ctx.loss_fn(functional_call(model, {**vbar, **buffers}, (xb,)), yb)
                grads = torch.autograd.grad(mixed_loss, [vbar[n] for n in params], allow_unused=True)
                optimizer.zero_grad(set_to_none=True)  # the global copy: FedAvg's step
                loss = ctx.loss_fn(model(xb), yb)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    g_alpha = 0.0
                    for (n, _), g in zip(params.items(), grads, strict=True):
                        if g is None:
                            continue
                        g_alpha += float(((v[n] - w_now[n]) * g).sum())
                        v[n] = v[n] - lr * alpha * g
                    if self.adapt:
                        alpha = min(1.0, max(0.0, alpha - lr * g_alpha))
                total += float(loss.detach()) * xb.shape[0]
                count += xb.shape[0]
            last = total / max(count, 1)
        client.state[LOCAL_MODEL] = Parameters({n: t.detach().cpu().numpy().copy() for n, t in v.items()})
        client.state[ALPHA] = Parameters({"alpha": np.array([alpha])})
        return FitRes(module_parameters(model), num_examples(ctx.train_data),
                      {"train_loss": last, "apfl_alpha": alpha, **before})

    def personal_model(self, client: PersonalClient, glob: Parameters) -> Parameters:
        """``alpha v + (1 - alpha) w`` for the global model ``glob`` (the global model itself before any task)."""
        local = client.state.get(LOCAL_MODEL)
        if local is None:
            return glob
        alpha = self.alpha_of(client)
        return Parameters({n: alpha * local[n] + (1 - alpha) * arr if n in local else arr for n, arr in glob.items()})

    def evaluate(self, client: PersonalClient, parameters: Parameters, config: Config) -> EvaluateRes:
        glob = client.plain_evaluate(parameters, config)
        client.load(self.personal_model(client, parameters))
        loss, _, metrics = client.evaluate_loaded()
        return EvaluateRes(glob.loss, glob.num_examples, {**glob.metrics, **personal_metrics(loss, metrics)})

    def __repr__(self) -> str:
        return f"APFL(alpha={self.alpha}, adapt={self.adapt})"


def build(options: Any) -> APFL:
    """The method from a run's :class:`~fedloom.personalization.options.PersonalizationOptions`."""
    return APFL(options.apfl_alpha, options.apfl_adapt)
