"""Shared fixtures: tiny fake clients with fixed behaviour for hand-computed assertions."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.core import Client, EvaluateRes, FitRes, Parameters


class FixedClient(Client):
    """Returns fixed parameters and example count from fit; fixed loss from evaluate."""

    def __init__(self, params: dict[str, np.ndarray], num_examples: int, loss: float = 0.0,
                 metrics: dict | None = None) -> None:
        self.params = Parameters(params)
        self.num_examples = num_examples
        self.loss = loss
        self.metrics = metrics or {}

    def get_parameters(self, config):
        return self.params

    def fit(self, parameters, config):
        return FitRes(self.params, self.num_examples, dict(self.metrics))

    def evaluate(self, parameters, config):
        return EvaluateRes(self.loss, self.num_examples, dict(self.metrics))


@pytest.fixture
def fixed_client_cls():
    return FixedClient
