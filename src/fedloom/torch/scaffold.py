"""The SCAFFOLD client: a :class:`TorchClient` that corrects its gradients with control variates.

Paper: Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning",
ICML 2020, arXiv:1910.06378. See :mod:`fedloom.strategies.scaffold` for the server side.

The correction ``g - c_i + c`` is added through the training loop's ``extra_loss`` hook as the
linear term ``<c - c_i, w>``, whose gradient is exactly ``c - c_i``; so any optimizer and data
pipeline of :class:`TorchClient` works unchanged. The client control variate ``c_i`` is kept in
``self.state["scaffold_c_i"]`` (in simulation: the client's entry of the ``ClientStateStore``),
and updated with option II of the paper: ``c_i+ = c_i - c + (x - y) / (K lr)``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from fedloom.core import FitIns, Parameters
    >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> client = ScaffoldClient(model_fn=lambda: nn.Linear(3, 2), train_data=(x, y), batch_size=4)
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
from fedloom.core.types import Config, FitIns, FitRes
from fedloom.errors import ValidationError
from fedloom.strategies.scaffold import SCAFFOLD_C, SCAFFOLD_DELTA_C
from fedloom.torch.client import TorchClient
from fedloom.torch.params import module_parameters
from fedloom.torch.training import num_examples

__all__ = ["ScaffoldClient"]

_STATE_KEY = "scaffold_c_i"


class ScaffoldClient(TorchClient):
    """A :class:`TorchClient` for :class:`~fedloom.strategies.Scaffold` (same constructor)."""

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        raise ValidationError("a SCAFFOLD client needs the server control variate: call fit_task(FitIns)")

    def fit_task(self, ins: FitIns) -> FitRes:
        c = ins.extras.get(SCAFFOLD_C)
        if c is None:
            raise ValidationError(f"SCAFFOLD task without {SCAFFOLD_C!r} in FitIns.extras")
        c_i = self.state.get(_STATE_KEY)
        if c_i is None:
            c_i = Parameters({n: np.zeros_like(a) for n, a in c.items()})
        model = self.model
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        correction = {
            n: torch.from_numpy(np.asarray(c[n], np.float32) - np.asarray(c_i[n], np.float32)).to(self.device)
            for n in c
            if n in trainable
        }
        steps = [0]

        def linear_term(m: nn.Module) -> torch.Tensor:
            steps[0] += 1
            terms = [(p * correction[n]).sum() for n, p in m.named_parameters() if n in correction]
            return torch.stack(terms).sum() if terms else torch.zeros((), device=self.device)

        loss = self.train(ins.parameters, ins.config, extra_loss=linear_term)
        new = module_parameters(model)
        k_lr = max(steps[0], 1) * float(ins.config.get("lr", self.lr))
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
        self.state[_STATE_KEY] = Parameters(c_new)
        return FitRes(
            new,
            num_examples(self.train_data),
            {"train_loss": loss},
            extras={SCAFFOLD_DELTA_C: Parameters(delta_c)},
        )
