"""Issue 10, finding 9: federated-evaluation results are validated like fit results.

Under HE the federated metrics are the only ones a run reports, so a client that returns a NaN
loss, an accuracy of 1e9 or 10**15 examples must not be able to set them. Before the fix such
results went straight into the example-weighted mean (fed_loss NaN; fed_accuracy 1e9 or ~1.0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedloom import simulate
from fedloom.core import Client, EvaluateRes, FitRes, Parameters
from fedloom.strategies import FedAvg

INITIAL = Parameters({"w": np.zeros(2, np.float32)})


class Honest(Client):
    def get_parameters(self, config):
        return INITIAL

    def fit(self, parameters, config):
        return FitRes(parameters, 10)

    def evaluate(self, parameters, config):
        return EvaluateRes(0.5, 10, {"accuracy": 0.8})


class Liar(Honest):
    def __init__(self, loss: float, num_examples: int, accuracy: float) -> None:
        self.result = EvaluateRes(loss, num_examples, {"accuracy": accuracy})

    def evaluate(self, parameters, config):
        return self.result


def _fed_metrics(liar: Client) -> dict[str, float]:
    result = simulate(lambda cid: liar if cid == "4" else Honest(), num_clients=5, rounds=1, initial_parameters=INITIAL,
                      strategy=FedAvg(fraction_evaluate=1.0, min_evaluate_clients=5))
    return {k: v for k, v in result.history[-1].metrics.items() if k.startswith("fed_")}


@pytest.mark.parametrize(("loss", "accuracy"), [(math.nan, 0.8), (math.inf, 0.8), (0.5, 1e9), (0.5, math.nan)])
def test_a_nan_or_absurd_evaluation_is_that_clients_failure(loss: float, accuracy: float) -> None:
    fed = _fed_metrics(Liar(loss, 10, accuracy))
    assert fed == {"fed_clients": 4, "fed_failures": 1, "fed_loss": 0.5, "fed_accuracy": pytest.approx(0.8)}


def test_a_huge_example_count_cannot_set_the_federated_metrics() -> None:
    fed = _fed_metrics(Liar(0.0, 10**15, 1.0))
    # capped at 10 x the median count (10): weight 100 against 4 x 10 honest; uncapped it would be 1.0 and 0.0
    assert fed["fed_accuracy"] == pytest.approx((100 * 1.0 + 40 * 0.8) / 140)
    assert fed["fed_loss"] == pytest.approx((100 * 0.0 + 40 * 0.5) / 140)


def test_a_malformed_evaluation_is_rejected() -> None:
    fed = _fed_metrics(Liar(100.0, -30, 0.0))  # a negative count: weights summing to 10 would flip the loss
    assert fed == {"fed_clients": 4, "fed_failures": 1, "fed_loss": 0.5, "fed_accuracy": pytest.approx(0.8)}
