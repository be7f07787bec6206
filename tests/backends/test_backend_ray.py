"""The Ray backend, on a small local Ray (2 CPUs) started and shut down by this module."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import pytest

from fedloom import Client, EvaluateRes, FedAvg, FitRes, Parameters, RunConfig, run_simulation, simulate
from fedloom.backends import RayPool
from fedloom.core.client_state import ClientState, ClientStateStore

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # classes defined in this test module travel by value: Ray workers cannot import test files
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_three_backends_give_the_same_model(local_ray: None) -> None:
    cfg = dict(dataset="iris", partition="dirichlet", clients=5, rounds=2, local_epochs=2,
               client_test_fraction=0.0, progress=False, seed=4)
    final = {b: run_simulation(RunConfig(backend=b, **cfg)).parameters.flatten()  # type: ignore[arg-type]
             for b in ("inline", "vectorized", "ray")}
    np.testing.assert_array_equal(final["ray"], final["inline"])  # same code, same seeds: identical
    np.testing.assert_allclose(final["vectorized"], final["inline"], rtol=1e-5, atol=1e-6)
    assert ray.is_initialized()  # the pool joined the running Ray and did not shut it down


class _Counting(Client):
    """Tiny stateful client: counts its own fits in per-client state and adds the count to w."""

    def __init__(self, cid: str, state: ClientState) -> None:
        self.cid, self.state = cid, state

    def get_parameters(self, config: dict) -> Parameters:
        return Parameters({"w": np.zeros(2)})

    def fit(self, parameters: Parameters, config: dict) -> FitRes:
        count = self.state.get("count", Parameters({"n": np.zeros(1)}))["n"] + 1
        self.state["count"] = Parameters({"n": count})
        return FitRes(Parameters({"w": parameters["w"] + count}), 1, {"seen": float(count[0])})

    def evaluate(self, parameters: Parameters, config: dict) -> EvaluateRes:
        return EvaluateRes(0.0, 1)


def test_client_state_comes_back_from_the_workers(local_ray: None) -> None:
    store = ClientStateStore()

    def client_fn(cid: str) -> Client:
        return _Counting(cid, store.get(cid))

    pool = RayPool(client_fn, 4, client_states=store, workers=2)
    try:
        strategy = FedAvg()
        state = strategy.initialize(Parameters({"w": np.zeros(2)}))
        for rnd in range(1, 4):
            tasks = strategy.configure_fit(state, rnd, pool.available())
            # rotate the order so a client lands on a different actor than in the round before
            tasks = tasks[rnd % 4:] + tasks[: rnd % 4]
            out = pool.fit(tasks, expected=state.parameters.spec(), timeout=None)
            assert not out.failures
            assert all(res.metrics["seen"] == rnd for _, res in out.results)
            strategy.aggregate_fit(state, rnd, out.results, out.failures)
    finally:
        pool.close()
    assert len(store) == 4 and all(c in store for c in "0123")
    assert all(float(store.get(c)["count"]["n"][0]) == 3.0 for c in "0123")
    np.testing.assert_array_equal(state.parameters["w"], [6.0, 6.0])  # 1 + 2 + 3


def test_a_failing_client_is_a_failure_not_a_crash(local_ray: None) -> None:
    class Broken(_Counting):
        def fit(self, parameters: Parameters, config: dict) -> FitRes:
            if self.cid == "1":
                raise RuntimeError("disk on fire")
            return super().fit(parameters, config)

    store = ClientStateStore()
    result = simulate(lambda cid: Broken(cid, store.get(cid)), num_clients=3, strategy=FedAvg(), rounds=1,
                      initial_parameters=Parameters({"w": np.zeros(2)}), backend="ray")
    assert result.history[0].metrics["fit_failures"] == 1.0
    np.testing.assert_array_equal(result.parameters["w"], [1.0, 1.0])
