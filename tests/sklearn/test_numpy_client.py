"""NumPyClient: named arrays in and out, on every in-process backend that can run it."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom.backends import make_pool
from fedloom.core.numpy_client import NumPyClient
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitIns
from fedloom.engine import FederatedLoop
from fedloom.errors import ValidationError
from fedloom.strategies import FedAvg


class MeanClient(NumPyClient):
    """Estimates the mean of its data: the federated mean is the pooled one."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.mu = data, np.zeros(2)

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {"mu": self.mu}

    def set_arrays(self, arrays) -> None:  # type: ignore[no-untyped-def]
        self.mu = np.array(arrays["mu"])

    def train(self, config):  # type: ignore[no-untyped-def]
        self.mu = self.data.mean(axis=0)
        return len(self.data), {}

    def test(self, config):  # type: ignore[no-untyped-def]
        return float(((self.data - self.mu) ** 2).mean()), len(self.data), {}


DATA = [np.arange(8.0).reshape(4, 2), np.ones((2, 2)), np.full((6, 2), 5.0)]


def test_federated_mean_through_the_inline_backend() -> None:
    pool = make_pool("inline", lambda cid: MeanClient(DATA[int(cid)]), len(DATA))
    loop = FederatedLoop(FedAvg(fraction_fit=1.0, min_fit_clients=3, max_norm_ratio=0, max_weight_ratio=0), pool,
                         num_rounds=1)
    result = loop.run(Parameters({"mu": np.zeros(2)}))
    assert np.allclose(result.parameters["mu"], np.concatenate(DATA).mean(axis=0))


def test_arrays_of_another_model_fail_the_task_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="missing \\['mu'\\], unexpected \\['w'\\]"):
        MeanClient(DATA[0]).fit_task(FitIns(Parameters({"w": np.zeros(2)}), {}))


def test_the_vectorized_backend_runs_a_numpy_client_inline_and_says_so() -> None:
    """Programmatic pools fall back to one-by-one with a warning (a configured run is refused instead:
    rule vectorized-needs-torch, tests/sklearn/test_sklearn_federated.py)."""
    pool = make_pool("vectorized", lambda cid: MeanClient(DATA[int(cid)]), len(DATA))
    loop = FederatedLoop(FedAvg(fraction_fit=1.0, min_fit_clients=3, max_norm_ratio=0, max_weight_ratio=0), pool,
                         num_rounds=1)
    with pytest.warns(Warning, match="not a plain TorchClient"):
        result = loop.run(Parameters({"mu": np.zeros(2)}))
    assert np.allclose(result.parameters["mu"], np.concatenate(DATA).mean(axis=0))
