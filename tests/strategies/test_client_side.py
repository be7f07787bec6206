"""Client halves of FedProx and SCAFFOLD, computed by hand on a one-weight model.

Model: ``nn.Linear(1, 1, bias=False)`` with w = 1, two identical samples x = 1, y = 0, MSE loss
(so loss = w^2 and grad = 2w), SGD lr = 0.1, batch size 1: two steps per epoch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedloom import FitIns, Parameters
from fedloom.errors import ValidationError
from fedloom.torch import ScaffoldClient, TorchClient


def _model() -> nn.Module:
    return nn.Linear(1, 1, bias=False)


def _kwargs(state: dict | None = None) -> dict:
    x, y = torch.ones(2, 1), torch.zeros(2)
    return {"model_fn": _model, "train_data": (x, y), "task": "regression", "lr": 0.1, "batch_size": 1,
            "state": state}


W1 = Parameters({"weight": np.array([[1.0]], np.float32)})


def test_proximal_term_pulls_towards_the_global_model() -> None:
    # step 1: grad 2*1 + mu*(1-1) = 2 -> w = 0.8; step 2: grad 2*0.8 + 1*(0.8-1) = 1.4 -> w = 0.66
    res = TorchClient(**_kwargs()).fit(W1, {"seed": 0, "proximal_mu": 1.0, "local_epochs": 1})
    assert float(res.parameters["weight"][0, 0]) == pytest.approx(0.66, abs=1e-6)
    plain = TorchClient(**_kwargs()).fit(W1, {"seed": 0, "local_epochs": 1})
    assert float(plain.parameters["weight"][0, 0]) == pytest.approx(0.64, abs=1e-6)


def test_scaffold_client_corrects_gradients_and_keeps_its_control_variate() -> None:
    state: dict = {}
    client = ScaffoldClient(**_kwargs(state))
    c = Parameters({"weight": np.array([[0.5]], np.float32)})
    res = client.fit_task(FitIns(W1, {"seed": 0, "local_epochs": 1}, {"scaffold_c": c}))
    # grad + (c - c_i): step 1: 2 + 0.5 -> w = 0.75; step 2: 1.5 + 0.5 -> w = 0.55
    assert float(res.parameters["weight"][0, 0]) == pytest.approx(0.55, abs=1e-6)
    # option II: c_i+ = 0 - 0.5 + (1 - 0.55) / (2 * 0.1) = 1.75
    assert float(res.extras["scaffold_delta_c"]["weight"][0, 0]) == pytest.approx(1.75, abs=1e-5)
    assert float(state["scaffold_c_i"]["weight"][0, 0]) == pytest.approx(1.75, abs=1e-5)
    # The next task of the same client (rebuilt, as in simulation) starts from the stored c_i:
    # grad + (0.5 - 1.75): step 1: 2 - 1.25 -> w = 0.925.
    again = ScaffoldClient(**_kwargs(state))
    res2 = again.fit_task(FitIns(W1, {"seed": 0, "local_epochs": 1, "batch_size": 2}, {"scaffold_c": c}))
    assert float(res2.parameters["weight"][0, 0]) == pytest.approx(0.925, abs=1e-6)


def test_scaffold_client_refuses_a_task_without_the_server_variate() -> None:
    client = ScaffoldClient(**_kwargs())
    with pytest.raises(ValidationError, match="scaffold_c"):
        client.fit_task(FitIns(W1, {"seed": 0}))
    with pytest.raises(ValidationError, match="fit_task"):
        client.fit(W1, {"seed": 0})
