"""One round of every strategy with toy clients: exact, hand-computed results.

Global model w = [0, 0]. Client "a" returns [1, 2] from 1 example, client "b" returns [3, 0] from
3 examples, so the example-weighted mean update is delta = [2.5, 0.5].
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedloom import Client, EvaluateRes, FitIns, FitRes, Parameters, simulate
from fedloom.core.types import Config
from fedloom.errors import ConfigError
from fedloom.strategies import (
    CoordinateMedian,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    FedYogi,
    Scaffold,
)
from fedloom.strategies.scaffold import SCAFFOLD_C, SCAFFOLD_DELTA_C

W0 = Parameters({"w": np.zeros(2)})
RESULTS = {"a": ([1.0, 2.0], 1), "b": ([3.0, 0.0], 3)}


def _results(extra: dict[str, list[float]] | None = None) -> list[tuple[str, FitRes]]:
    out = []
    for cid, (w, n) in RESULTS.items():
        extras = {SCAFFOLD_DELTA_C: Parameters({"w": np.array(extra[cid])})} if extra else {}
        out.append((cid, FitRes(Parameters({"w": np.array(w)}), n, {"train_loss": float(n)}, extras)))
    return out


def _one_round(strategy, clients=("a", "b"), extra=None):  # noqa: ANN001, ANN202
    state = strategy.initialize(W0, seed=0)
    tasks = strategy.configure_fit(state, 1, list(clients))
    metrics = strategy.aggregate_fit(state, 1, _results(extra), [])
    return state, tasks, metrics


def test_fedavg_weighted_mean() -> None:
    state, _, metrics = _one_round(FedAvg())
    assert state.parameters["w"].tolist() == [2.5, 0.5]
    assert metrics["fit_clients"] == 2 and metrics["train_loss"] == pytest.approx((1 * 1 + 3 * 3) / 4)


def test_fedprox_sends_mu_and_accepts_partial_work_then_averages() -> None:
    state, tasks, _ = _one_round(FedProx(proximal_mu=0.5, fit_config={"local_epochs": 3}))
    assert all(ins.config == {"local_epochs": 3, "proximal_mu": 0.5, "accept_partial_work": True} for _, ins in tasks)
    assert state.parameters["w"].tolist() == [2.5, 0.5]


def test_fedavgm_momentum_over_two_rounds() -> None:
    strategy = FedAvgM(server_lr=1.0, server_momentum=0.9)
    state, _, _ = _one_round(strategy)
    assert state.parameters["w"].tolist() == [2.5, 0.5]  # v = delta on the first round
    # Round 2: the same client models give delta = ([1,2]-[2.5,.5])*1/4 + ([3,0]-[2.5,.5])*3/4 = [0, 0],
    # so v = 0.9 * [2.5, 0.5] and w = [2.5 + 2.25, 0.5 + 0.45].
    strategy.aggregate_fit(state, 2, _results(), [])
    assert state.parameters["w"] == pytest.approx([4.75, 0.95])
    assert state.components["server_opt"].trace == pytest.approx([2.25, 0.45])


@pytest.mark.parametrize(
    ("cls", "expected_v"),
    [
        # v0 = tau^2 = 0.25; delta^2 = [6.25, 0.25]; beta2 = 0.99
        (FedAdam, [0.99 * 0.25 + 0.01 * 6.25, 0.99 * 0.25 + 0.01 * 0.25]),
        (FedYogi, [0.25 + 0.01 * 6.25, 0.25]),  # sign(v - d^2) = [-1, 0]
        (FedAdagrad, [0.25 + 6.25, 0.25 + 0.25]),
    ],
)
def test_fedopt_one_round(cls: type, expected_v: list[float]) -> None:
    state, _, _ = _one_round(cls(server_lr=0.1, beta1=0.9, beta2=0.99, tau=0.5))
    m = [0.1 * 2.5, 0.1 * 0.5]  # (1 - beta1) * delta
    expected_w = [0.1 * m[i] / (math.sqrt(expected_v[i]) + 0.5) for i in range(2)]
    assert state.parameters["w"] == pytest.approx(expected_w, rel=1e-12)
    assert state.components["server_opt"].m == pytest.approx(m)
    assert state.components["server_opt"].v == pytest.approx(expected_v)


def test_scaffold_sends_c_and_updates_it_over_all_clients() -> None:
    strategy = Scaffold(server_lr=1.0)
    # Four clients exist, two report: c <- 0 + (dc_a + dc_b) / 4.
    state, tasks, _ = _one_round(strategy, clients=("a", "b", "c", "d"), extra={"a": [1.0, 1.0], "b": [3.0, -1.0]})
    assert all(ins.extras[SCAFFOLD_C]["w"].tolist() == [0.0, 0.0] for _, ins in tasks)
    assert state.parameters["w"].tolist() == [2.5, 0.5]
    assert state.components["scaffold"].c["w"].tolist() == [1.0, 0.0]
    assert state.components["scaffold"].num_clients == 4
    # The next round sends the new c.
    tasks = strategy.configure_fit(state, 2, ["a", "b", "c", "d"])
    assert tasks[0][1].extras[SCAFFOLD_C]["w"].tolist() == [1.0, 0.0]


def test_scaffold_counts_results_without_control_variates_as_failures() -> None:
    strategy = Scaffold()
    state = strategy.initialize(W0)
    strategy.configure_fit(state, 1, ["a", "b"])
    good = _results({"a": [1.0, 1.0], "b": [1.0, 1.0]})[1]
    bad = _results()[0]
    metrics = strategy.aggregate_fit(state, 1, [bad, good], [])
    assert metrics["fit_failures"] == 1 and state.parameters["w"].tolist() == [3.0, 0.0]


def test_robust_aggregator_composes_with_a_server_optimizer() -> None:
    # Median of the two updates is their unweighted mean [2, 1]; FedAvgM with momentum 0 and lr 0.5
    # applies half of it.
    strategy = FedAvgM(server_lr=0.5, server_momentum=0.0, aggregator=CoordinateMedian())
    state, _, _ = _one_round(strategy)
    assert state.parameters["w"].tolist() == [1.0, 0.5]


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: FedProx(proximal_mu=-1), "proximal_mu"),
        (lambda: FedAvgM(server_momentum=1.0), "server_momentum"),
        (lambda: FedAdam(tau=0), "tau"),
        (lambda: FedYogi(beta2=1.0), "beta2"),
        (lambda: FedAdagrad(server_lr=0), "server_lr"),
        (lambda: Scaffold(server_lr=-1), "server_lr"),
    ],
)
def test_invalid_hyperparameters_raise_config_error(factory, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=match):
        factory()


class _FixedClient(Client):
    def __init__(self, value: list[float], n: int) -> None:
        self.value, self.n = value, n

    def get_parameters(self, config: Config) -> Parameters:
        return W0

    def fit(self, parameters: Parameters, config: Config) -> FitRes:
        return FitRes(Parameters({"w": np.array(self.value)}), self.n)

    def evaluate(self, parameters: Parameters, config: Config) -> EvaluateRes:
        return EvaluateRes(0.0, 1)


class _FixedScaffoldClient(_FixedClient):
    def fit_task(self, ins: FitIns) -> FitRes:
        res = self.fit(ins.parameters, ins.config)
        res.extras[SCAFFOLD_DELTA_C] = Parameters({"w": ins.extras[SCAFFOLD_C]["w"] + 1.0})
        return res


def test_scaffold_through_the_round_loop_delivers_extras_both_ways() -> None:
    clients = {"0": _FixedScaffoldClient([1.0, 2.0], 1), "1": _FixedScaffoldClient([3.0, 0.0], 3)}
    result = simulate(clients.__getitem__, num_clients=2, strategy=Scaffold(), rounds=1, initial_parameters=W0)
    assert result.parameters["w"].tolist() == [2.5, 0.5]
    assert result.state.components["scaffold"].c["w"].tolist() == [1.0, 1.0]  # (1 + 1) / 2 clients
