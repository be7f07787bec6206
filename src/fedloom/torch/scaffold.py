"""SCAFFOLD's client half: a trainer that corrects its gradients with control variates.

Paper: Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning",
ICML 2020, arXiv:1910.06378. See :mod:`fedloom.strategies.scaffold` for the server side.

The correction ``g - c_i + c`` is added through the training loop's ``extra_loss`` hook as the
linear term ``<c - c_i, w>``, whose gradient is exactly ``c - c_i``; so any optimizer and data
pipeline of :class:`TorchClient` works unchanged. The client control variate ``c_i`` is kept in
the client's persistent ``state["scaffold_c_i"]`` (in simulation: the client's entry of the
``ClientStateStore``), and updated with option II of the paper: ``c_i+ = c_i - c + (x - y) / (K lr)``.

Every :class:`TorchClient` without an explicit trainer runs :class:`ScaffoldTrainer` for a task
that carries the server control variate; :class:`~fedloom.torch.client.ScaffoldClient` is a
``TorchClient`` that always runs it (and refuses tasks without the variate).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from fedloom.core import FitIns, Parameters
    >>> from fedloom.torch import TorchClient
    >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> client = TorchClient(trainer=ScaffoldTrainer(), model_fn=lambda: nn.Linear(3, 2), train_data=(x, y),
    ...                      batch_size=4)
    >>> w = client.get_parameters({})
    >>> c = Parameters({k: v * 0 for k, v in w.items()})
    >>> res = client.fit_task(FitIns(w, {"seed": 0}, {"scaffold_c": c}))
    >>> sorted(res.extras)
    ['scaffold_delta_c']
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedloom.core.parameters import Parameters
from fedloom.core.trainer import TRAINERS, TrainContext, TrainOutcome
from fedloom.core.types import FitIns
from fedloom.errors import ValidationError
from fedloom.strategies.scaffold import SCAFFOLD_C, SCAFFOLD_DELTA_C
from fedloom.torch.params import module_parameters
from fedloom.torch.trainers import config_mu, proximal_term, run_epochs

__all__ = ["ScaffoldTrainer", "SCAFFOLD_C", "SCAFFOLD_DELTA_C"]

_STATE_KEY = "scaffold_c_i"


@TRAINERS.register("scaffold")
class ScaffoldTrainer:
    """SCAFFOLD's client: local epochs with control-variate corrected gradients g - c_i + c.

    Needs the server control variate in ``FitIns.extras["scaffold_c"]``; keeps ``c_i`` in the
    client's state and returns ``delta c_i`` in ``extras["scaffold_delta_c"]``. A task config with
    ``proximal_mu > 0`` adds FedProx's term as well.
    """

    vectorizable: bool = False

    def train(self, ctx: TrainContext, ins: FitIns) -> TrainOutcome:
        c = ins.extras.get(SCAFFOLD_C)
        if c is None:
            raise ValidationError(
                f"SCAFFOLD task without {SCAFFOLD_C!r} in FitIns.extras: a SCAFFOLD client needs the server "
                "control variate, so call fit_task(FitIns(parameters, config, extras)), not fit()"
            )
        c_i = ctx.state.get(_STATE_KEY)
        if c_i is None:
            c_i = Parameters({n: np.zeros_like(a) for n, a in c.items()})
        model = ctx.model
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        correction = {
            n: torch.from_numpy(np.asarray(c[n], np.float32) - np.asarray(c_i[n], np.float32)).to(ctx.device)
            for n in c
            if n in trainable
        }
        steps = [0]

        def linear_term(m: nn.Module) -> torch.Tensor:
            steps[0] += 1
            terms = [(p * correction[n]).sum() for n, p in m.named_parameters() if n in correction]
            return torch.stack(terms).sum() if terms else torch.zeros((), device=ctx.device)

        mu = config_mu(ins.config)  # FedProx's term composes: the server may send both
        extra = proximal_term(model, mu, linear_term) if mu > 0 else linear_term
        loss = run_epochs(ctx, ins.config, extra)
        new = module_parameters(model)
        k_lr = max(steps[0], 1) * ctx.lr_for(ins.config)
        c_new: dict[str, np.ndarray] = {}
        delta_c: dict[str, np.ndarray] = {}
        for n in c:
            if n in correction:
                drift = (np.asarray(ins.parameters[n], np.float64) - np.asarray(new[n], np.float64)) / k_lr
                value = np.asarray(c_i[n], np.float64) - np.asarray(c[n], np.float64) + drift
            else:  # buffers (e.g. BatchNorm statistics) are not trained by gradients: no correction
                value = np.asarray(c_i[n], np.float64)
            c_new[n] = value.astype(c[n].dtype)
            delta_c[n] = (value - np.asarray(c_i[n], np.float64)).astype(c[n].dtype)
        ctx.state[_STATE_KEY] = Parameters(c_new)
        return TrainOutcome(loss, extras={SCAFFOLD_DELTA_C: Parameters(delta_c)})

    def __repr__(self) -> str:
        return "ScaffoldTrainer()"
