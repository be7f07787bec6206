"""The asynchronous loop over gRPC: concurrent single-task fit calls on the real GrpcPool (TLS, tokens),
one deliberately slow client whose stale updates are dropped or discounted while the server finishes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from net_helpers import AddOne

from fedloom.core.parameters import Parameters
from fedloom.engine.async_loop import AsyncLoop
from fedloom.engine.async_realtime import RealtimeDriver
from fedloom.strategies import FedAvg
from fedloom.strategies.staleness import staleness_fn

pytestmark = pytest.mark.slow


def _run(harness, *, max_staleness: int, updates: int, staleness: str = "poly:0.5"):
    h = harness(min_clients=3)
    slow = AddOne(delay=0.6)
    for name, client in (("0", AddOne(delay=0.1)), ("1", AddOne(delay=0.1)), ("2", slow)):
        h.start(name, client)
    assert h.pool.wait_for_clients(3, timeout=10)
    loop = AsyncLoop(FedAvg(), h.pool, num_updates=updates, buffer_size=1, concurrency=3,
                     staleness=staleness_fn(staleness), max_staleness=max_staleness, round_timeout=10.0,
                     driver=RealtimeDriver(3))
    start = time.monotonic()
    result = loop.run(Parameters({"w": np.zeros(3, np.float32)}))
    return result, time.monotonic() - start, slow


def test_async_server_finishes_while_the_slow_clients_stale_update_is_dropped(harness):
    result, wall, slow = _run(harness, max_staleness=3, updates=40, staleness="constant")
    last = result.history[-1].metrics
    assert result.state.round == 40 and len(result.history) == 40
    assert last["dropped_stale"] >= 1  # the slow client's update came back many versions late
    assert last["client_updates"] == 40
    assert max(h.metrics["staleness_max"] for h in result.history) <= 3
    assert slow.calls >= 1
    # each update is w_v + 1 - w_v against the version v the server recorded for the task (not the current
    # model), so with constant weights w counts the updates applied
    np.testing.assert_allclose(result.parameters["w"], 40.0, rtol=0, atol=1e-4)
    assert wall < 15


def test_without_a_bound_the_slow_update_is_used_and_discounted(harness):
    result, _, _ = _run(harness, max_staleness=0, updates=40)
    stale = [h.metrics["staleness_max"] for h in result.history]
    assert max(stale) > 3 and result.history[-1].metrics["dropped_stale"] == 0
    # a stale update's delta (w_v + 1 - w_v = 1) is scaled by (1 + s)^-0.5 < 1: w grows by less than 40
    assert float(result.parameters["w"][0]) < 40.0


def test_realtime_driver_runs_again_after_a_failed_run(harness):
    """A deployment retries a failed server update by running the loop again on the same driver."""
    h = harness(min_clients=2)
    for name in ("0", "1"):
        h.start(name, AddOne(delay=0.01))
    assert h.pool.wait_for_clients(2, timeout=10)
    driver = RealtimeDriver(2)
    loop = AsyncLoop(FedAvg(), h.pool, num_updates=2, buffer_size=1, concurrency=2, driver=driver)
    loop.run(Parameters({"w": np.zeros(3, np.float32)}))
    again = loop.run(Parameters({"w": np.zeros(3, np.float32)}))  # the driver was closed by the first run
    assert again.state.round == 2
