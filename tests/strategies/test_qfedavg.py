"""q-FedAvg (Li et al. 2020): q = 0 is FedAvg; q > 0 moves the model towards the clients with a high loss."""

from __future__ import annotations

import numpy as np
import pytest

from fedloom import RunConfig, run_simulation
from fedloom.core.parameters import Parameters
from fedloom.core.types import FitRes
from fedloom.errors import RoundFailedError
from fedloom.strategies import FedAvg
from fedloom.strategies.qfedavg import QFedAvg, qffl_step


def _results(rng: np.random.Generator, glob: Parameters, n: int = 5) -> list[tuple[str, FitRes]]:
    out = []
    for i in range(n):
        params = Parameters({k: v + rng.normal(0, 0.1, v.shape) for k, v in glob.items()})
        out.append((str(i), FitRes(params, int(rng.integers(5, 50)), {"initial_loss": float(rng.uniform(0.1, 3.0))})))
    return out


@pytest.mark.parametrize("weighted", [True, False])
def test_q_zero_is_fedavg(weighted: bool) -> None:
    rng = np.random.default_rng(0)
    glob = Parameters({"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3)})
    fedavg, qfedavg = FedAvg(weighted=weighted), QFedAvg(q=0.0, weighted=weighted, fit_config={"lr": 0.05})
    s1, s2 = fedavg.initialize(glob, seed=1), qfedavg.initialize(glob, seed=1)
    for rnd in (1, 2, 3):
        results = _results(rng, s1.parameters)
        fedavg.aggregate_fit(s1, rnd, results, [])
        qfedavg.aggregate_fit(s2, rnd, results, [])
        for k in glob:
            np.testing.assert_allclose(s2.parameters[k], s1.parameters[k], rtol=1e-12, atol=1e-12)


def test_q_zero_runs_like_fedavg_with_the_same_seed() -> None:
    base = dict(dataset="iris", clients=4, rounds=3, progress=False, seed=5, hidden=8)
    a = run_simulation(RunConfig(**base))
    b = run_simulation(RunConfig(**base, strategy="qfedavg", q=0.0))
    for k in a.parameters:
        np.testing.assert_allclose(b.parameters[k], a.parameters[k], rtol=1e-6, atol=1e-7)


def test_a_larger_q_moves_towards_the_client_with_the_larger_loss() -> None:
    updates = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    losses, weights = np.array([0.5, 2.0]), np.ones(2)
    step0 = qffl_step(updates, losses, weights, q=0.0, lipschitz=10.0)
    step2 = qffl_step(updates, losses, weights, q=2.0, lipschitz=10.0)
    np.testing.assert_allclose(step0, [0.5, 0.5])
    assert step2[1] / step2[0] == pytest.approx((2.0 / 0.5) ** 2)  # Delta_k scales with F_k^q
    # h_k by hand for q = 2: q F^(q-1) ||L u||^2 + L F^q, summed
    h = sum(2 * f * (10.0 ** 2) + 10.0 * f ** 2 for f in losses)
    np.testing.assert_allclose(step2, [10.0 * 0.5 ** 2 / h, 10.0 * 2.0 ** 2 / h])


def test_a_client_without_its_initial_loss_is_a_failure_not_a_crash() -> None:
    glob = Parameters({"w": np.zeros(2)})
    strategy = QFedAvg(q=1.0, min_fit_results=1)
    state = strategy.initialize(glob)
    good = FitRes(Parameters({"w": np.ones(2)}), 10, {"initial_loss": 1.0})
    bad = FitRes(Parameters({"w": np.full(2, 100.0)}), 10, {})
    metrics = strategy.aggregate_fit(state, 1, [("0", good), ("1", bad)], [])
    assert metrics["fit_failures"] == 1 and metrics["fit_clients"] == 1
    with pytest.raises(RoundFailedError, match="initial_loss"):
        strategy.aggregate_fit(state, 2, [("1", bad)], [])
